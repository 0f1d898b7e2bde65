package dev.colo.daemon.checkpoint;

import static org.assertj.core.api.Assertions.assertThat;

import dev.colo.checkpoint.coordinator.CheckpointRecord;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

/**
 * The RAM pre-copy of a pairing when the link loses or damages a batch: the secondary must refuse
 * the first checkpoint that builds on it (its shadow has a hole or a wrong page), and the retry is
 * full, so the SVM is still an exact copy. Simulated hypervisor, virtual time.
 */
class PrecopyFaultsSimulationTest {
    final SimulatedEngineRig rig = new SimulatedEngineRig(true);

    @AfterEach
    void close() {
        rig.close();
    }

    @Test
    void aPrecopyBatchTheLinkLostMakesTheSecondaryRefuseTheFirstCheckpointAndTheRetryIsFull() {
        rig.guestFillsEveryPage();
        rig.loseNextPrecopyBatch.set(true);
        rig.pair();
        assertThat(rig.loseNextPrecopyBatch).as("a batch was lost").isFalse();
        CheckpointRecord first = rig.records().get(0);
        assertThat(first.committed()).isFalse();
        assertThat(first.full()).isFalse();
        assertThat(first.outcome()).contains("CORRUPT").contains("batches").contains("arrived");
        CheckpointRecord retry = rig.records().stream().filter(CheckpointRecord::committed).findFirst().orElseThrow();
        assertThat(retry.full()).isTrue();
        rig.assertSvmIsACopyOfThePvm();
        assertThat(rig.released()).doesNotContain(first.seq());
    }

    @Test
    void aDamagedPrecopyBatchMakesTheSecondaryRefuseTheFirstCheckpointAndTheRetryIsFull() {
        rig.guestFillsEveryPage();
        rig.corruptNextPrecopyBatch.set(true);
        rig.pair();
        CheckpointRecord first = rig.records().get(0);
        assertThat(first.committed()).isFalse();
        assertThat(first.outcome()).contains("CORRUPT").contains("damaged");
        CheckpointRecord retry = rig.records().stream().filter(CheckpointRecord::committed).findFirst().orElseThrow();
        assertThat(retry.full()).isTrue();
        rig.assertSvmIsACopyOfThePvm();
    }

    @Test
    void anIntactPrecopyLetsTheFirstCheckpointShipOnlyWhatChanged() {
        rig.guestFillsEveryPage();
        rig.pair();
        CheckpointRecord first = rig.records().get(0);
        assertThat(first.committed()).as(first.outcome()).isTrue();
        assertThat(first.full()).isFalse();
        rig.assertSvmIsACopyOfThePvm();
    }
}
