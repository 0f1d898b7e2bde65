package dev.colo.checkpoint.coordinator;

import static org.assertj.core.api.Assertions.assertThat;

import dev.colo.checkpoint.coordinator.CheckpointCoordinator.State;
import dev.colo.testkit.ManualClock;
import dev.colo.testkit.Seeds;
import java.util.Random;
import org.junit.jupiter.api.Test;

/**
 * Seeded chaos: random successes, failures and delays for every step. Invariants: the PVM is never
 * left paused once the coordinator rests, checkpoints are released in increasing order, only when
 * acknowledged and never an aborted one, no sequence number is used twice, and the checkpoint after
 * any abort is full.
 */
class CheckpointCoordinatorPropertyTest {
    @Test
    void invariantsHoldUnderRandomFailuresAndDelays() {
        Seeds.forEach(500, 7_000, CheckpointCoordinatorPropertyTest::run);
    }

    static void run(long seed) {
        Random rnd = new Random(seed);
        ManualClock clock = new ManualClock();
        RecordingActions a = new RecordingActions();
        CheckpointCoordinator c = new CheckpointCoordinator(CoordinatorConfig.defaults(), a, t -> { }, 0);
        c.start(clock.nowNs());
        boolean pvmPaused = false;
        boolean abortedBefore = false;
        for (int step = 0; step < 300; step++) {
            long epoch = c.attemptSeq();
            String last = a.log.isEmpty() ? "" : a.last();
            if (last.startsWith("pause")) {
                pvmPaused = true;
            }
            int dice = rnd.nextInt(100);
            long now = clock.advanceMs(rnd.nextInt(dice < 5 ? 40_000 : 50));
            switch (c.state()) {
                case PAUSING -> {
                    if (dice < 85) {
                        c.onPaused(epoch, now);
                    } else if (dice < 93) {
                        c.onStepFailed(epoch, Step.PAUSE, "qmp error", now);
                    } else {
                        c.doWork(now);
                    }
                }
                case CAPTURING -> {
                    if (dice < 85) {
                        c.onCaptured(epoch, rnd.nextInt(1000), 1, 1, 1, now);
                    } else if (dice < 93) {
                        c.onStepFailed(epoch, Step.CAPTURE, "stream cut", now);
                    } else {
                        c.doWork(now);
                    }
                }
                case RESUMING, ABORT_RESUMING -> {
                    if (dice < 90) {
                        pvmPaused = false;
                        c.onResumed(epoch, now);
                    } else {
                        c.doWork(now);
                    }
                }
                case SHIPPING -> {
                    if (dice < 85) {
                        c.onShipped(epoch, 1, now);
                    } else if (dice < 93) {
                        c.onStepFailed(epoch, Step.SHIP, "link down", now);
                    } else {
                        c.doWork(now);
                    }
                }
                case AWAITING_ACK -> {
                    if (dice < 80) {
                        c.onAck(epoch, 1, now);
                    } else if (dice < 90) {
                        c.onStepFailed(epoch, Step.ACK, "standby refused", now);
                    } else {
                        c.doWork(now);
                    }
                }
                case IDLE, BACKOFF -> {
                    assertThat(pvmPaused).as("PVM left paused while the coordinator rests").isFalse();
                    if (dice < 50) {
                        c.onTrigger(Trigger.DIVERGENCE, "random", now);
                    } else {
                        c.doWork(now);
                    }
                }
            }
            if (a.log.stream().anyMatch(l -> l.startsWith("abandon"))) {
                abortedBefore = true;
            }
            if (abortedBefore && !a.log.isEmpty() && a.last().startsWith("capture")) {
                assertThat(a.last()).as("first capture after an abort").endsWith("full");
                abortedBefore = false;
                a.log.removeIf(l -> l.startsWith("abandon"));
            }
        }
        for (int k = 1; k < a.released.size(); k++) {
            assertThat(a.released.get(k)).as("checkpoints released in increasing order").isGreaterThan(a.released.get(k - 1));
        }
        java.util.Set<Long> abandoned = new java.util.HashSet<>(a.abandoned);
        assertThat(abandoned).as("an abandoned checkpoint is never released").doesNotContainAnyElementsOf(a.released);
        assertThat(a.abandoned).as("no sequence number abandoned twice").doesNotHaveDuplicates();
        if (!a.released.isEmpty()) {
            assertThat(c.committedSeq()).isEqualTo(a.released.get(a.released.size() - 1));
        }
        assertThat(a.records.stream().filter(CheckpointRecord::committed).count()).isEqualTo(a.released.size());
        assertThat(c.state()).isIn((Object[]) State.values());
    }
}
