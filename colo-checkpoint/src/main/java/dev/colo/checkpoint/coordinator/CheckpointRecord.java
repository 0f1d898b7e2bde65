package dev.colo.checkpoint.coordinator;

/**
 * The figures of one checkpoint attempt, for the log line and metrics.
 *
 * @param outcome "committed" or "aborted: …"
 * @param pausedNs PVM stop to cont
 * @param svmReadyNs commit to a running SVM, as the secondary measured it
 */
public record CheckpointRecord(long seq, Trigger trigger, String reason, boolean full, String outcome, long pausedNs,
        long dirtyPages, long rawBytes, long wireBytes, long deviceStateBytes, long svmReadyNs, long totalNs) {

    public boolean committed() {
        return "committed".equals(outcome);
    }
}
