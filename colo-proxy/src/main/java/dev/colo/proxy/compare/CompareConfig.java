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
 */
public record CompareConfig(long compareTimeoutNs, int maxHeldPerFlow, int maxHeldTotal, int maxFlows, long idleFlowNs) {
    public static CompareConfig defaults() {
        return new CompareConfig(3_000_000_000L, 1024, 65_536, 16_384, 300_000_000_000L);
    }

    public CompareConfig withCompareTimeoutMs(long ms) {
        return new CompareConfig(ms * 1_000_000L, maxHeldPerFlow, maxHeldTotal, maxFlows, idleFlowNs);
    }

    public CompareConfig withMaxHeldPerFlow(int n) {
        return new CompareConfig(compareTimeoutNs, n, maxHeldTotal, maxFlows, idleFlowNs);
    }

    public CompareConfig withMaxHeldTotal(int n) {
        return new CompareConfig(compareTimeoutNs, maxHeldPerFlow, n, maxFlows, idleFlowNs);
    }

    public CompareConfig withMaxFlows(int n) {
        return new CompareConfig(compareTimeoutNs, maxHeldPerFlow, maxHeldTotal, n, idleFlowNs);
    }
}
