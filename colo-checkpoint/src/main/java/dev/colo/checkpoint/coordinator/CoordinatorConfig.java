package dev.colo.checkpoint.coordinator;

/**
 * Timeouts per step and the checkpoint cadence.
 *
 * @param maxIntervalNs checkpoint at least this often even without divergence (0: never)
 * @param retryBackoffNs wait this long before retrying after an abort
 */
public record CoordinatorConfig(long pauseTimeoutNs, long captureTimeoutNs, long resumeTimeoutNs, long shipTimeoutNs,
        long ackTimeoutNs, long maxIntervalNs, long retryBackoffNs) {

    public static CoordinatorConfig defaults() {
        long ms = 1_000_000L;
        return new CoordinatorConfig(2_000 * ms, 5_000 * ms, 2_000 * ms, 30_000 * ms, 30_000 * ms, 10_000 * ms, 500 * ms);
    }

    long timeoutOf(Step s) {
        return switch (s) {
            case PAUSE -> pauseTimeoutNs;
            case CAPTURE -> captureTimeoutNs;
            case RESUME -> resumeTimeoutNs;
            case SHIP -> shipTimeoutNs;
            case ACK -> ackTimeoutNs;
        };
    }
}
