package dev.colo.proxy.compare;

/**
 * A checkpoint request with its evidence: the reason, the flow it concerns (or "-"), the stream
 * offset or queue size where it happened, and a human detail.
 */
public record CheckpointRequest(Reason reason, String flow, long offset, String detail, long atNs) {
    @Override
    public String toString() {
        return reason.name().toLowerCase() + " flow=" + flow + " offset=" + offset + " detail=" + detail;
    }
}
