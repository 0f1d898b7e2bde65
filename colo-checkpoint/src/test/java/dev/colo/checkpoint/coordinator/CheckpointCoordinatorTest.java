package dev.colo.checkpoint.coordinator;

import static org.assertj.core.api.Assertions.assertThat;

import dev.colo.checkpoint.coordinator.CheckpointCoordinator.State;
import dev.colo.checkpoint.coordinator.CheckpointCoordinator.Transition;
import dev.colo.testkit.ManualClock;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;

/** Every trigger, step, timeout and abort path, on a manual clock. */
class CheckpointCoordinatorTest {
    final ManualClock clock = new ManualClock();
    final RecordingActions actions = new RecordingActions();
    final List<Transition> transitions = new ArrayList<>();
    final CheckpointCoordinator c = new CheckpointCoordinator(CoordinatorConfig.defaults(), actions, transitions::add, 0);

    long now() {
        return clock.nowNs();
    }

    /** Drives the checkpoint in flight to its commit. */
    void completeCheckpoint(long epoch) {
        c.onPaused(epoch, clock.advanceMs(1));
        c.onCaptured(epoch, 300, 300 * 4096, 100_000, 600_000, clock.advanceMs(10));
        c.onResumed(epoch, clock.advanceMs(2));
        c.onShipped(epoch, 1, clock.advanceMs(5));
        c.onAck(epoch, 25_000_000, clock.advanceMs(30));
    }

    @Test
    void firstCheckpointIsFullAndRunsEveryStepInOrder() {
        c.start(now());
        assertThat(c.state()).isEqualTo(State.PAUSING);
        completeCheckpoint(1);
        assertThat(actions.log).containsExactly("pause 1", "snapshot 1", "capture 1 full", "resume 1", "ship 1", "release 1");
        assertThat(c.committedSeq()).isEqualTo(1);
        assertThat(c.state()).isEqualTo(State.IDLE);
        assertThat(actions.records).singleElement().satisfies(r -> {
            assertThat(r.committed()).isTrue();
            assertThat(r.full()).isTrue();
            assertThat(r.trigger()).isEqualTo(Trigger.RESYNC);
            assertThat(r.pausedNs()).isEqualTo(12_000_000L);
            assertThat(r.dirtyPages()).isEqualTo(300);
            assertThat(r.svmReadyNs()).isEqualTo(25_000_000L);
        });
        c.onTrigger(Trigger.DIVERGENCE, "payload mismatch at offset 47", clock.advanceMs(100));
        completeCheckpoint(2);
        assertThat(actions.log).contains("capture 2").doesNotContain("capture 2 full");
        assertThat(c.committedSeq()).isEqualTo(2);
    }

    @Test
    void outputIsReleasedOnlyWhenTheSecondaryAcknowledges() {
        c.start(now());
        c.onPaused(1, clock.advanceMs(1));
        c.onCaptured(1, 1, 1, 1, 1, clock.advanceMs(1));
        c.onResumed(1, clock.advanceMs(1));
        c.onShipped(1, 1, clock.advanceMs(1));
        assertThat(actions.released).isEmpty();
        c.onAck(2, 0, clock.advanceMs(1)); // not this epoch
        assertThat(actions.released).isEmpty();
        c.onAck(1, 0, clock.advanceMs(1));
        assertThat(actions.released).containsExactly(1L);
    }

    @Test
    void anAckThatOvertakesTheShippedEventStillCommits() {
        c.start(now());
        c.onPaused(1, clock.advanceMs(1));
        c.onCaptured(1, 1, 1, 1, 1, clock.advanceMs(1));
        c.onResumed(1, clock.advanceMs(1));
        c.onAck(1, 0, clock.advanceMs(1));
        c.onShipped(1, 1, clock.advanceMs(1)); // late, ignored
        assertThat(c.committedSeq()).isEqualTo(1);
        assertThat(c.state()).isEqualTo(State.IDLE);
        assertThat(actions.released).containsExactly(1L);
    }

    @Test
    void triggersDuringACheckpointAreCoalescedIntoOneNext() {
        c.start(now());
        c.onTrigger(Trigger.DIVERGENCE, "a", now());
        c.onTrigger(Trigger.AGEING, "b", now());
        c.onTrigger(Trigger.ON_DEMAND, "c", now());
        assertThat(c.coalescedTriggers()).isEqualTo(3);
        completeCheckpoint(1);
        assertThat(c.state()).as("the coalesced trigger starts the next one at once").isEqualTo(State.PAUSING);
        completeCheckpoint(2);
        assertThat(c.state()).isEqualTo(State.IDLE);
        assertThat(actions.records).extracting(CheckpointRecord::trigger).containsExactly(Trigger.RESYNC, Trigger.DIVERGENCE);
    }

    @Test
    void maximumIntervalStartsACheckpoint() {
        c.start(now());
        completeCheckpoint(1);
        c.doWork(clock.advanceMs(9_000));
        assertThat(c.state()).isEqualTo(State.IDLE);
        c.doWork(clock.advanceMs(1_100));
        assertThat(c.state()).isEqualTo(State.PAUSING);
        assertThat(transitions.get(transitions.size() - 1).reason()).startsWith("max_interval");
    }

    @Test
    void timeoutsWhileThePvmMayBePausedResumeItAbandonAndResyncFully() {
        for (State stuck : List.of(State.PAUSING, State.CAPTURING, State.RESUMING)) {
            RecordingActions a = new RecordingActions();
            CheckpointCoordinator k = new CheckpointCoordinator(CoordinatorConfig.defaults(), a, t -> { }, 4);
            k.start(now());
            if (stuck != State.PAUSING) {
                k.onPaused(5, clock.advanceMs(1));
            }
            if (stuck == State.RESUMING) {
                k.onCaptured(5, 1, 1, 1, 1, clock.advanceMs(1));
            }
            assertThat(k.state()).isEqualTo(stuck);
            k.doWork(clock.advanceMs(6_000));
            assertThat(k.state()).as("stuck in %s", stuck).isEqualTo(State.ABORT_RESUMING);
            assertThat(a.last()).isEqualTo("resume 5");
            k.onResumed(5, clock.advanceMs(1));
            assertThat(k.state()).isEqualTo(State.BACKOFF);
            assertThat(a.log).contains("abandon 5").doesNotContain("release 5");
            assertThat(a.records).singleElement().satisfies(r -> assertThat(r.outcome()).contains("timed out"));
            k.doWork(clock.advanceMs(600));
            assertThat(k.state()).isEqualTo(State.PAUSING);
            assertThat(a.last()).as("the retry has a number of its own").isEqualTo("pause 6");
            k.onPaused(5, clock.advanceMs(1));
            assertThat(k.state()).as("an event of the abandoned attempt is ignored").isEqualTo(State.PAUSING);
            k.onPaused(6, clock.advanceMs(1));
            assertThat(a.last()).as("the retry after checkpoint 5 failed is full").isEqualTo("capture 6 full");
        }
    }

    @Test
    void shippingOrAckFailuresAbandonWithoutTouchingTheRunningPvm() {
        c.start(now());
        c.onPaused(1, clock.advanceMs(1));
        c.onCaptured(1, 1, 1, 1, 1, clock.advanceMs(1));
        c.onResumed(1, clock.advanceMs(1));
        c.onShipped(1, 1, clock.advanceMs(1));
        c.onStepFailed(1, Step.ACK, "secondary: CRC32C mismatch in page batch 3", clock.advanceMs(1));
        assertThat(c.state()).isEqualTo(State.BACKOFF);
        assertThat(actions.log).containsSubsequence("resume 1", "ship 1", "abandon 1");
        assertThat(actions.log.stream().filter(l -> l.startsWith("resume")).count()).isEqualTo(1);
        assertThat(actions.records).singleElement().satisfies(r -> assertThat(r.outcome()).contains("CRC32C"));
        assertThat(c.committedSeq()).isZero();
        c.doWork(clock.advanceMs(500));
        completeCheckpoint(2);
        assertThat(c.committedSeq()).isEqualTo(2);
    }

    @Test
    void ackTimeoutAbandons() {
        c.start(now());
        c.onPaused(1, clock.advanceMs(1));
        c.onCaptured(1, 1, 1, 1, 1, clock.advanceMs(1));
        c.onResumed(1, clock.advanceMs(1));
        c.onShipped(1, 1, clock.advanceMs(1));
        c.doWork(clock.advanceMs(31_000));
        assertThat(c.state()).isEqualTo(State.BACKOFF);
        assertThat(actions.last()).isEqualTo("abandon 1");
    }

    @Test
    void aPvmThatWillNotResumeIsAskedAgainAndSaidSo() {
        c.start(now());
        c.onPaused(1, clock.advanceMs(1));
        c.onStepFailed(1, Step.CAPTURE, "migrate failed: stream cut", clock.advanceMs(1));
        assertThat(c.state()).isEqualTo(State.ABORT_RESUMING);
        c.doWork(clock.advanceMs(2_100));
        c.doWork(clock.advanceMs(2_100));
        assertThat(actions.log.stream().filter(l -> l.equals("resume 1")).count()).isEqualTo(3);
        assertThat(transitions).anySatisfy(t -> assertThat(t.reason()).contains("still paused"));
    }

    @Test
    void staleAndOutOfOrderEventsAreIgnored() {
        c.start(now());
        c.onCaptured(1, 1, 1, 1, 1, now()); // before onPaused
        c.onShipped(1, 1, now());
        c.onPaused(7, now());
        assertThat(c.state()).isEqualTo(State.PAUSING);
        assertThat(actions.log).containsExactly("pause 1");
    }

    @Test
    void aSwitchoverKeepsThePvmPausedAndHandsOverOnTheAck() {
        c.start(now());
        completeCheckpoint(1);
        c.onTrigger(Trigger.SWITCHOVER, "operator asked", clock.advanceMs(10));
        c.onPaused(2, clock.advanceMs(1));
        c.onCaptured(2, 5, 1, 1, 1, clock.advanceMs(5));
        assertThat(c.state()).isEqualTo(State.SHIPPING);
        c.onShipped(2, 1, clock.advanceMs(1));
        c.onAck(2, 0, clock.advanceMs(1));
        assertThat(c.state()).isEqualTo(State.HANDED_OVER);
        assertThat(actions.log).containsSubsequence("pause 2", "snapshot 2", "capture 2", "ship 2", "release 2", "hand over 2")
                .doesNotContain("resume 2");
        c.onTrigger(Trigger.DIVERGENCE, "late", clock.advanceMs(1));
        c.doWork(clock.advanceMs(60_000));
        assertThat(c.state()).as("nothing after a handover").isEqualTo(State.HANDED_OVER);
    }

    /** Checkpoint 1 commits, then switchover checkpoint 2 is shipped and the secondary refuses it. */
    void switchoverRefusedAt2(String refusal) {
        c.start(now());
        completeCheckpoint(1);
        c.onTrigger(Trigger.SWITCHOVER, "operator asked", clock.advanceMs(10));
        c.onPaused(2, clock.advanceMs(1));
        c.onCaptured(2, 5, 1, 1, 1, clock.advanceMs(5));
        c.onShipped(2, 1, clock.advanceMs(1));
        c.onStepFailed(2, Step.ACK, refusal, clock.advanceMs(1));
    }

    @Test
    void aFailedSwitchoverResumesThePvm() {
        switchoverRefusedAt2("secondary: NO_STANDBY");
        assertThat(c.state()).isEqualTo(State.ABORT_RESUMING);
        assertThat(actions.last()).isEqualTo("resume 2");
        c.onResumed(2, clock.advanceMs(1));
        assertThat(c.state()).isEqualTo(State.BACKOFF);
        assertThat(actions.handedOver).isEmpty();
        c.doWork(clock.advanceMs(600));
        assertThat(actions.records.get(actions.records.size() - 1).outcome()).contains("NO_STANDBY");
        assertThat(c.state()).as("an ordinary full resync follows, not another switchover").isEqualTo(State.PAUSING);
        c.onPaused(3, clock.advanceMs(1));
        assertThat(actions.last()).isEqualTo("capture 3 full");
    }

    @Test
    void aSwitchoverAskedAgainAfterAFailedOneRunsAfterTheBackoffInFull() {
        switchoverRefusedAt2("secondary: LOAD_FAILED");
        c.onTrigger(Trigger.SWITCHOVER, "planned switchover, attempt 2", clock.advanceMs(1)); // while the PVM resumes
        c.onResumed(2, clock.advanceMs(1));
        c.onTrigger(Trigger.DIVERGENCE, "the clients go on", clock.advanceMs(1));
        c.doWork(clock.advanceMs(600));
        c.onPaused(3, clock.advanceMs(1));
        assertThat(actions.last()).isEqualTo("capture 3 full");
        c.onCaptured(3, 5, 1, 1, 1, clock.advanceMs(5));
        assertThat(c.state()).as("the retry is a switchover: its PVM is not resumed").isEqualTo(State.SHIPPING);
        c.onShipped(3, 1, clock.advanceMs(1));
        c.onAck(3, 0, clock.advanceMs(1));
        assertThat(c.state()).isEqualTo(State.HANDED_OVER);
        assertThat(actions.handedOver).containsExactly(3L);
    }

    @Test
    void everyTransitionIsReportedWithItsReason() {
        c.start(now());
        completeCheckpoint(1);
        assertThat(transitions).extracting(Transition::to).containsExactly(State.PAUSING, State.CAPTURING, State.RESUMING,
                State.SHIPPING, State.AWAITING_ACK, State.IDLE);
        assertThat(transitions).allSatisfy(t -> assertThat(t.reason()).isNotBlank());
        assertThat(CheckpointCoordinator.legalTransitions()).contains("IDLE -> PAUSING", "CAPTURING -> ABORT_RESUMING")
                .doesNotContain("IDLE -> SHIPPING");
    }
}
