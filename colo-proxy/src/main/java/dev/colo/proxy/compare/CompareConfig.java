package dev.colo.proxy.compare;

/**
 * Comparator bounds. Defaults follow QEMU's colo-compare where one exists (compare_timeout 3000 ms,
 * max_queue_size 1024 per connection).
 *
 * @param compareTimeoutNs how long a frame may wait for its counterpart before a checkpoint
 * @param maxHeldPerFlow held primary frames per flow before a checkpoint (QUEUE_FULL)
 * @param maxHeldTotal held frames (both sides) before a checkpoint; twice this is the hard limit
 *     past which new primary frames are dropped and counted (TCP retransmits them)
 * @param maxFlows tracked flows before a checkpoint; twice this is the hard limit
 * @param idleFlowNs a flow with nothing held and no traffic for this long is forgotten
 * @param httpDate the {@code http_date} rule ({@link HttpDateNormalizer}); off unless the operator opts in
 */
public record CompareConfig(long compareTimeoutNs, int maxHeldPerFlow, int maxHeldTotal, int maxFlows, long idleFlowNs, boolean httpDate) {
    public CompareConfig(long compareTimeoutNs, int maxHeldPerFlow, int maxHeldTotal, int maxFlows, long idleFlowNs) {
        this(compareTimeoutNs, maxHeldPerFlow, maxHeldTotal, maxFlows, idleFlowNs, false);
    }

    public static CompareConfig defaults() {
        return new CompareConfig(3_000_000_000L, 1024, 65_536, 16_384, 300_000_000_000L);
    }

    public CompareConfig withHttpDate(boolean on) {
        return new CompareConfig(compareTimeoutNs, maxHeldPerFlow, maxHeldTotal, maxFlows, idleFlowNs, on);
    }

    public CompareConfig withCompareTimeoutMs(long ms) {
        return new CompareConfig(ms * 1_000_000L, maxHeldPerFlow, maxHeldTotal, maxFlows, idleFlowNs, httpDate);
    }

    public CompareConfig withMaxHeldPerFlow(int n) {
        return new CompareConfig(compareTimeoutNs, n, maxHeldTotal, maxFlows, idleFlowNs, httpDate);
    }

    public CompareConfig withMaxHeldTotal(int n) {
        return new CompareConfig(compareTimeoutNs, maxHeldPerFlow, n, maxFlows, idleFlowNs, httpDate);
    }

    public CompareConfig withMaxFlows(int n) {
        return new CompareConfig(compareTimeoutNs, maxHeldPerFlow, maxHeldTotal, n, idleFlowNs, httpDate);
    }
}
