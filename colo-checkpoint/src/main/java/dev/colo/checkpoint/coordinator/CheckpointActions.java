package dev.colo.checkpoint.coordinator;

/**
 * What the coordinator asks the engine to do. Each call returns at once; the engine reports the
 * outcome with the matching {@code on…} event of {@link CheckpointCoordinator}.
 */
public interface CheckpointActions {
    void pause(long epoch);

    /** The PVM is paused: client input from now on belongs to {@code epoch}'s SVM. */
    void snapshot(long epoch);

    void capture(long epoch, boolean full);

    void resume(long epoch);

    void ship(long epoch);

    /** The secondary runs {@code epoch}'s SVM: PVM output held up to it may leave. */
    void release(long epoch);

    /** Give up {@code epoch} on both sides: input goes back to the previous SVM, partial state is dropped. */
    void abandon(long epoch, String reason);

    /** One line of figures per finished checkpoint, committed or not. */
    void record(CheckpointRecord record);
}
