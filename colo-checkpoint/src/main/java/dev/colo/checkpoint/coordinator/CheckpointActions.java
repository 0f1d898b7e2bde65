package dev.colo.checkpoint.coordinator;

/**
 * What the coordinator asks the engine to do. Each call returns at once; the engine reports the
 * outcome with the matching {@code on…} event of {@link CheckpointCoordinator}.
 */
public interface CheckpointActions {
    void pause(long seq);

    /** The PVM is paused: client input from now on belongs to the SVM of {@code seq}. */
    void snapshot(long seq);

    void capture(long seq, boolean full);

    void resume(long seq);

    void ship(long seq);

    /** The secondary runs the SVM of {@code seq}: PVM output held up to it may leave. */
    void release(long seq);

    /** Give up {@code seq} on both sides: input goes back to the previous SVM, partial state is dropped. */
    void abandon(long seq, String reason);

    /**
     * A switchover checkpoint committed: the PVM stays paused for good and the secondary's SVM of
     * {@code seq} is the VM now; tell the secondary to take over.
     */
    void handOver(long seq);

    /** One line of figures per finished checkpoint, committed or not. */
    void record(CheckpointRecord record);
}
