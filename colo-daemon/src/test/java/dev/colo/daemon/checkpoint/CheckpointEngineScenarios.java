package dev.colo.daemon.checkpoint;

import static org.assertj.core.api.Assertions.assertThat;

import dev.colo.checkpoint.coordinator.CheckpointRecord;
import dev.colo.checkpoint.coordinator.Trigger;
import java.util.List;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/**
 * The checkpoint engine's scenarios, written once (as Ratis writes its election tests): a
 * subclass only says which rig they run on. {@link CheckpointEngineSimulationTest} runs them on the
 * simulated hypervisor in virtual time, {@link CheckpointEngineIT} on real QEMU through the real link.
 */
abstract class CheckpointEngineScenarios {
    EngineRig rig;

    abstract EngineRig newRig() throws Exception;

    /** How many incremental checkpoints the first scenario takes. */
    abstract int checkpoints();

    @BeforeEach
    void startRig() throws Exception {
        rig = newRig();
        rig.start();
    }

    @AfterEach
    void stopRig() {
        if (rig != null) {
            rig.close();
        }
    }

    @Test
    void everyCheckpointMakesTheSvmAnExactCopy() throws Exception {
        // Guest RAM went over while the PVM ran: the pairing's first checkpoint ships only what changed since.
        assertThat(rig.records().get(0).full()).as("the first checkpoint of a pairing follows the RAM pre-copy").isFalse();
        rig.assertSvmIsACopyOfThePvm();
        for (int i = 0; i < checkpoints(); i++) {
            rig.guestWorks();
            CheckpointRecord r = rig.checkpoint(Trigger.ON_DEMAND, "scenario " + i);
            assertThat(r.committed()).as("checkpoint %d: %s", r.seq(), r.outcome()).isTrue();
            assertThat(r.full()).isFalse();
            assertThat(r.dirtyPages()).as("dirty pages of checkpoint %d", r.seq()).isPositive();
            rig.assertSvmIsACopyOfThePvm();
        }
        List<Long> released = rig.released();
        assertThat(released).hasSize(checkpoints() + 1);
        for (int k = 1; k < released.size(); k++) {
            assertThat(released.get(k)).as("released in order, each once").isEqualTo(released.get(k - 1) + 1);
        }
    }

    @Test
    void aCorruptedBatchAbortsAndAFullResyncFollows() throws Exception {
        rig.guestWorks();
        rig.corruptNextPageBatch();
        CheckpointRecord failed = rig.checkpoint(Trigger.DIVERGENCE, "payload mismatch");
        assertThat(failed.committed()).isFalse();
        assertThat(failed.outcome()).contains("CORRUPT");
        CheckpointRecord resync = rig.awaitCommitAfter(failed.seq());
        assertThat(resync.full()).as("the checkpoint after an abort is full").isTrue();
        assertThat(resync.seq()).as("the retry has a number of its own").isGreaterThan(failed.seq());
        rig.assertSvmIsACopyOfThePvm();
        assertThat(rig.released()).doesNotContain(failed.seq());
    }

    @Test
    void aPvmThatDoesNotPauseIsLeftRunningAndResyncedLater() throws Exception {
        rig.guestWorks();
        rig.pvmWillNotPause(true);
        CheckpointRecord failed = rig.checkpoint(Trigger.ON_DEMAND, "will time out");
        assertThat(failed.committed()).isFalse();
        assertThat(failed.outcome()).contains("pause failed");
        assertThat(rig.pvmRunning()).as("the PVM is never left paused").isTrue();
        rig.pvmWillNotPause(false);
        rig.awaitCommitAfter(failed.seq());
        assertThat(rig.pvmRunning()).isTrue();
        rig.assertSvmIsACopyOfThePvm();
    }
}
