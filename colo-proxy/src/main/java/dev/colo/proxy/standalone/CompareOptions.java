package dev.colo.proxy.standalone;

/**
 * Options of {@code colo compare}, named after QEMU's colo-compare properties.
 *
 * @param notifyDev optional; without it a checkpoint request is logged and held output released
 *     (monitor mode), since nothing could resync the VMs
 */
public record CompareOptions(Endpoint primaryIn, Endpoint secondaryIn, Endpoint outdev, Endpoint notifyDev,
        long compareTimeoutMs, long expiredScanCycleMs, int maxQueueSize, boolean vnetHdr) {

    public CompareOptions {
        if (compareTimeoutMs <= 0) {
            throw new IllegalArgumentException("compare timeout must be positive, got " + compareTimeoutMs + " ms");
        }
        if (expiredScanCycleMs <= 0) {
            throw new IllegalArgumentException("expired scan cycle must be positive, got " + expiredScanCycleMs + " ms");
        }
        if (maxQueueSize <= 0) {
            throw new IllegalArgumentException("max queue size must be positive, got " + maxQueueSize);
        }
    }
}
