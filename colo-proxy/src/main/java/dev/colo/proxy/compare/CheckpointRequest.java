package dev.colo.proxy.compare;

/**
 * A checkpoint request with its evidence: the reason, the flow it concerns (or "-"), the stream
 * offset or queue size where it happened, a human detail, and how long the oldest PVM output held
 * then had waited ({@code oldestHeldNs}, 0 when none) and on which flow: what a client has waited
 * already before this checkpoint even starts.
 */
public record CheckpointRequest(Reason reason, String flow, long offset, String detail, long atNs, long oldestHeldNs,
        String oldestHeldFlow) {
    @Override
    public String toString() {
        return reason.name().toLowerCase() + " flow=" + flow + " offset=" + offset + " detail=" + detail + " oldest_held_ms="
                + oldestHeldNs / 1_000_000 + (oldestHeldNs > 0 ? " oldest_held_flow=" + oldestHeldFlow : "");
    }
}
