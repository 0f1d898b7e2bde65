package dev.colo.daemon.checkpoint;

import dev.colo.checkpoint.coordinator.CheckpointRecord;
import dev.colo.checkpoint.coordinator.Trigger;
import java.util.List;

/**
 * A primary checkpoint engine and a secondary sink over some hypervisor and link, as the
 * scenarios in {@link CheckpointEngineScenarios} see them: the same scenario body runs on the
 * simulated hypervisor with a simulated link ({@link SimulatedEngineRig}, virtual time) and on real
 * QEMU with the mutual-TLS link ({@link QemuEngineRig}, wall time).
 */
interface EngineRig extends AutoCloseable {
    /** The PVM runs; protection starts; returns once the first checkpoint (after the RAM pre-copy) committed. */
    void start() throws Exception;

    /** The guest does some work between checkpoints (writes its RAM, answers its clients). */
    void guestWorks() throws Exception;

    /** Asks for a checkpoint and waits for the next attempt to finish, committed or not. */
    CheckpointRecord checkpoint(Trigger trigger, String why) throws Exception;

    /** Waits for the first commit of a checkpoint numbered above {@code seq}. */
    CheckpointRecord awaitCommitAfter(long seq) throws Exception;

    /** Fails unless the running SVM is the PVM as of the last commit (RAM and devices, or what it answers). */
    void assertSvmIsACopyOfThePvm() throws Exception;

    /** Every finished attempt so far, in order. */
    List<CheckpointRecord> records();

    /** Checkpoints whose held output the engine released, in order. */
    List<Long> released();

    /** The next page batch on its way to the secondary gets one bit flipped. */
    void corruptNextPageBatch();

    /** QMP stop on the PVM times out (on) or works again (off). */
    void pvmWillNotPause(boolean on);

    boolean pvmRunning();

    @Override
    void close();
}
