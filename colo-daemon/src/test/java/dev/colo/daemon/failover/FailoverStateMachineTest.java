package dev.colo.daemon.failover;

import static org.assertj.core.api.Assertions.assertThat;

import dev.colo.daemon.failover.FailoverStateMachine.Role;
import dev.colo.daemon.failover.FailoverStateMachine.State;
import dev.colo.daemon.failover.FailoverStateMachine.Transition;
import dev.colo.daemon.failover.FailoverStateMachine.Verdict;
import dev.colo.testkit.ManualClock;
import dev.colo.testkit.Seeds;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.Test;

/** Every transition on a manual clock, and seeded partition chaos between two real instances. */
class FailoverStateMachineTest {
    static final long MS = 1_000_000L;
    static final long TIMEOUT = 300 * MS;
    static final long LEASE = 1_000 * MS;
    final ManualClock clock = new ManualClock();

    static final class Actions implements FailoverActions {
        final List<String> log = new ArrayList<>();

        @Override public void probe() { log.add("probe"); }
        @Override public void holdOutput() { log.add("hold"); }
        @Override public void resumeProtected() { log.add("resume"); }
        @Override public void runUnprotected() { log.add("unprotected"); }
        @Override public void reprotect() { log.add("reprotect"); }
        @Override public void promote(long term) { log.add("promote " + term); }
        @Override public void fence(String reason) { log.add("fence"); }
        @Override public void abandonSvm(String reason) { log.add("abandon svm"); }
    }

    final Actions actions = new Actions();
    final List<Transition> transitions = new ArrayList<>();

    FailoverStateMachine machine(Role role, long term) {
        return new FailoverStateMachine(role, term, TIMEOUT, LEASE, 2_000 * MS, actions, transitions::add, clock.nowNs());
    }

    @Test
    void aPeerInTheSameTermChangesNothingAPeerInANewerTermFences() {
        FailoverStateMachine p = machine(Role.PRIMARY, 1);
        p.onHeartbeat(1, clock.advanceMs(10)); // the secondary follows our term, whatever checkpoint it runs
        assertThat(p.state()).isEqualTo(State.PROTECTED);
        p.onHeartbeat(2, clock.advanceMs(10)); // the peer took over in term 2
        assertThat(p.state()).isEqualTo(State.FENCED);
        assertThat(actions.log).containsExactly("fence");
    }

    @Test
    void aFenceFromThePeerStopsAStalePrimary() {
        FailoverStateMachine p = new FailoverStateMachine(State.UNPROTECTED, 3, TIMEOUT, LEASE, 2_000 * MS, actions, transitions::add, clock.nowNs());
        p.onFenced(4, "partition healed", clock.advanceMs(1));
        assertThat(p.state()).isEqualTo(State.FENCED);
        assertThat(transitions.get(transitions.size() - 1).reason()).contains("term 4");
        FailoverStateMachine s = machine(Role.SECONDARY, 3);
        s.onFenced(4, "nonsense", clock.advanceMs(1));
        assertThat(s.state()).as("a secondary releases nothing to fence").isEqualTo(State.STANDBY);
    }

    @Test
    void pairingRunsFromUnprotectedToProtectedOrBackOnFailure() {
        FailoverStateMachine p = new FailoverStateMachine(State.UNPROTECTED, 0, TIMEOUT, LEASE, 2_000 * MS, actions, transitions::add, clock.nowNs());
        assertThat(p.protectionWanted()).isFalse();
        p.doWork(clock.advanceMs(5_000));
        assertThat(actions.log).as("nothing to re-protect before the operator pairs").isEmpty();
        p.onPairingStarted("operator asked", clock.advanceMs(1));
        assertThat(p.state()).isEqualTo(State.PAIRING);
        assertThat(p.releasing()).as("before the first checkpoint the output flows unprotected").isTrue();
        p.onPairingFailed("peer unreachable", clock.advanceMs(1));
        assertThat(p.state()).isEqualTo(State.UNPROTECTED);
        p.onHeartbeat(0, clock.advanceMs(2_100));
        p.doWork(clock.advanceMs(1));
        assertThat(actions.log).as("a failed pairing is retried after the backoff").containsExactly("reprotect");
        p.onPairingStarted("re-protection", clock.advanceMs(1));
        p.onReprotected(1, clock.advanceMs(1));
        assertThat(p.state()).isEqualTo(State.PROTECTED);
        assertThat(p.term()).as("pairing does not change the term").isZero();
        p.onUnpaired("operator unpaired", clock.advanceMs(1));
        assertThat(p.state()).isEqualTo(State.UNPROTECTED);
        assertThat(p.protectionWanted()).isFalse();
    }

    @Test
    void secondaryGoesFromIdleToStandbyAndTakesOverOnHandoverWithoutTheWitness() {
        FailoverStateMachine s = new FailoverStateMachine(State.IDLE, 0, TIMEOUT, LEASE, 2_000 * MS, actions, transitions::add, clock.nowNs());
        s.doWork(clock.advanceMs(1_000));
        assertThat(s.state()).as("no SVM: nothing to promote, no probing").isEqualTo(State.IDLE);
        s.onPaired(1, clock.advanceMs(1));
        assertThat(s.state()).isEqualTo(State.STANDBY);
        s.onHandover("PVM crashed", clock.advanceMs(10));
        assertThat(s.state()).isEqualTo(State.ACTIVE);
        assertThat(s.term()).isEqualTo(1);
        assertThat(actions.log).containsExactly("promote 1");
    }

    @Test
    void primaryToldItsSecondaryIsGoneRunsUnprotectedAtOnceAndALostVmFences() {
        FailoverStateMachine p = machine(Role.PRIMARY, 3);
        p.onSecondaryLost("SVM crashed", clock.advanceMs(1));
        assertThat(p.state()).isEqualTo(State.UNPROTECTED);
        assertThat(actions.log).containsExactly("unprotected");
        FailoverStateMachine q = machine(Role.PRIMARY, 3);
        q.onLocalVmLost("QEMU killed", clock.advanceMs(1));
        assertThat(q.state()).isEqualTo(State.FENCED);
        assertThat(q.releasing()).isFalse();
    }

    @Test
    void primaryLosingItsSecondaryHoldsThenServesUnprotectedThenReprotects() {
        FailoverStateMachine p = machine(Role.PRIMARY, 7);
        p.doWork(clock.advanceMs(200));
        assertThat(p.state()).isEqualTo(State.PROTECTED);
        p.doWork(clock.advanceMs(150));
        assertThat(p.state()).isEqualTo(State.SUSPECT);
        assertThat(p.releasing()).isFalse();
        assertThat(actions.log).containsExactly("hold", "probe");
        p.onVerdict(new Verdict(true, false, "10.0.0.254 answered in 2 ms"), clock.advanceMs(5));
        assertThat(p.state()).as("the secondary may still promote: held until its lease is surely over").isEqualTo(State.SUSPECT);
        assertThat(transitions.get(transitions.size() - 1).reason()).contains("holding output").contains("promotion lease");
        p.doWork(clock.advanceMs(1_000)); // 1355 ms silent: the lease (1000) plus the margin (500) not yet over
        assertThat(p.state()).isEqualTo(State.SUSPECT);
        assertThat(actions.log).as("the witness answered once; no more probes while the lease runs out").containsExactly("hold", "probe");
        p.doWork(clock.advanceMs(150));
        assertThat(p.state()).isEqualTo(State.UNPROTECTED);
        assertThat(p.releasing()).isTrue();
        assertThat(transitions.get(transitions.size() - 1).reason()).contains("witness answered").contains("10.0.0.254")
                .contains("lease is over");
        p.onHeartbeat(7, clock.advanceMs(100));
        p.doWork(clock.advanceMs(50));
        assertThat(actions.log).as("not before the backoff").doesNotContain("reprotect");
        p.onHeartbeat(7, clock.advanceMs(2_000)); // the secondary is back and keeps sending heartbeats
        p.doWork(clock.advanceMs(50));
        assertThat(actions.log).contains("reprotect");
        p.onReprotected(8, clock.advanceMs(1));
        assertThat(p.state()).isEqualTo(State.PROTECTED);
        assertThat(p.term()).isEqualTo(7);
    }

    @Test
    void primaryThatCannotSeeTheWitnessFencesItself() {
        FailoverStateMachine p = machine(Role.PRIMARY, 7);
        p.doWork(clock.advanceMs(400));
        p.onVerdict(new Verdict(false, false, "10.0.0.254 silent for 3 probes"), clock.advanceMs(5));
        assertThat(p.state()).isEqualTo(State.FENCED);
        assertThat(p.releasing()).isFalse();
        assertThat(actions.log).contains("fence");
    }

    @Test
    void aHeartbeatBackBeforeTheVerdictRestoresProtection() {
        FailoverStateMachine p = machine(Role.PRIMARY, 1);
        p.doWork(clock.advanceMs(400));
        p.onHeartbeat(1, clock.advanceMs(10));
        assertThat(p.state()).isEqualTo(State.PROTECTED);
        assertThat(actions.log).as("what was held back leaves").endsWith("resume");
        p.onVerdict(new Verdict(false, false, "late"), clock.advanceMs(10));
        assertThat(p.state()).as("a late verdict changes nothing").isEqualTo(State.PROTECTED);
    }

    @Test
    void secondaryPromotesOnlyWithTheWitnessAndAnUnreachablePrimary() {
        FailoverStateMachine s = machine(Role.SECONDARY, 4);
        s.doWork(clock.advanceMs(400));
        assertThat(s.state()).isEqualTo(State.PROBING);
        s.onVerdict(new Verdict(false, false, "witness silent"), clock.advanceMs(5));
        assertThat(s.state()).isEqualTo(State.PROBING);
        s.onVerdict(new Verdict(true, false, "witness answered, primary silent on the LAN"), clock.advanceMs(5));
        assertThat(s.state()).isEqualTo(State.ACTIVE);
        assertThat(s.term()).isEqualTo(5);
        assertThat(actions.log).contains("promote 5");
    }

    @Test
    void aPrimaryReachableWithinOurLeaseKeepsTheSvmUntilItsHeartbeatIsBack() {
        // 30% loss on the link: no heartbeat for a while, but the primary is alive and holds its
        // output for us. Retiring here cost a whole new pairing over that same lossy link.
        FailoverStateMachine s = machine(Role.SECONDARY, 4);
        s.doWork(clock.advanceMs(400));
        assertThat(s.state()).isEqualTo(State.PROBING);
        s.onVerdict(new Verdict(true, true, "witness answered; primary daemon accepted"), clock.advanceMs(5));
        assertThat(s.state()).as("within our lease the primary served nothing past our SVM").isEqualTo(State.PROBING);
        assertThat(transitions.get(transitions.size() - 1).reason()).contains("keeping our SVM").contains("ms left of our promotion lease");
        s.onPrimaryServesWithoutUs("VM address answered", clock.advanceMs(100));
        assertThat(s.state()).as("the VM answering within the lease is output the primary let out for us").isEqualTo(State.PROBING);
        s.onHeartbeat(4, clock.advanceMs(100));
        assertThat(s.state()).isEqualTo(State.STANDBY);
        assertThat(actions.log).doesNotContain("abandon svm");
    }

    @Test
    void aPrimaryThatOutlivesTheLinkAndOurLeaseMakesTheSvmStaleForGood() {
        FailoverStateMachine s = machine(Role.SECONDARY, 4);
        s.doWork(clock.advanceMs(400));
        s.onVerdict(new Verdict(true, true, "witness answered; VM address answered"), clock.advanceMs(5));
        assertThat(s.state()).isEqualTo(State.PROBING);
        s.onVerdict(new Verdict(true, true, "witness answered; VM address answered"), clock.advanceMs(LEASE / MS));
        assertThat(s.state()).as("the primary serves unprotected: our SVM falls behind").isEqualTo(State.IDLE);
        assertThat(actions.log).contains("abandon svm");
        assertThat(transitions.get(transitions.size() - 1).reason()).contains("stale");
        s.doWork(clock.advanceMs(10_000));
        s.onHandover("late", clock.advanceMs(1));
        assertThat(s.state()).as("a stale SVM is never promoted").isEqualTo(State.IDLE);
    }

    @Test
    void aSecondaryWhoseLeaseRanOutRetiresItsSvmInsteadOfPromoting() {
        FailoverStateMachine s = machine(Role.SECONDARY, 4);
        s.onPeerHeartbeat(clock.nowNs(), false, clock.advanceMs(20)); // the primary echoed our heartbeat of t=0
        s.onHeartbeat(4, clock.nowNs());
        // We stalled (or heard the primary while it could not hear us) for longer than the lease.
        s.doWork(clock.advanceMs(1_100));
        assertThat(s.state()).isEqualTo(State.PROBING);
        s.onVerdict(new Verdict(true, false, "witness answered, primary silent on the LAN"), clock.advanceMs(5));
        assertThat(s.state()).as("the primary may have served without us since: never promote").isEqualTo(State.IDLE);
        assertThat(actions.log).containsExactly("probe", "abandon svm");
        assertThat(transitions.get(transitions.size() - 1).reason()).contains("last confirmed us 1125 ms ago").contains("lease of 1000 ms");
    }

    @Test
    void aPairingWithAPrimaryOfShorterLeaseKeepsToIt() {
        FailoverStateMachine s = machine(Role.SECONDARY, 4);
        s.onPairRequest(4, 600 * MS); // the primary serves alone 600 + 500 ms after it last heard from us
        assertThat(s.pairingLeaseNs()).isEqualTo(600 * MS);
        s.onPeerHeartbeat(clock.nowNs(), false, clock.advanceMs(20));
        s.onHeartbeat(4, clock.nowNs());
        s.doWork(clock.advanceMs(650));
        s.onVerdict(new Verdict(true, false, "witness answered, primary silent on the LAN"), clock.advanceMs(5));
        assertThat(s.state()).as("past the primary's lease, though within our own").isEqualTo(State.IDLE);
        FailoverStateMachine t = machine(Role.SECONDARY, 4);
        t.onPairRequest(4, 5_000 * MS);
        assertThat(t.pairingLeaseNs()).as("a longer lease of the primary's does not lengthen ours").isEqualTo(LEASE);
        t.onPairRequest(4, 0);
        assertThat(t.pairingLeaseNs()).as("a primary that does not say: ours").isEqualTo(LEASE);
    }

    @Test
    void aPrimaryHeartbeatSayingItServesAloneRetiresTheSvmAndOnlyAProtectedPrimaryEchoes() {
        FailoverStateMachine s = machine(Role.SECONDARY, 4);
        s.onPeerHeartbeat(clock.nowNs(), true, clock.advanceMs(5));
        assertThat(s.state()).isEqualTo(State.IDLE);
        assertThat(actions.log).containsExactly("abandon svm");
        FailoverStateMachine p = machine(Role.PRIMARY, 4);
        assertThat(p.echoesPeer()).isTrue();
        assertThat(p.servesAlone()).isFalse();
        p.onSecondaryLost("SVM crashed", clock.advanceMs(1));
        assertThat(p.echoesPeer()).as("an unprotected primary renews no lease").isFalse();
        assertThat(p.servesAlone()).isTrue();
    }

    @Test
    void secondaryGoesBackToStandbyWhenThePrimaryReturns() {
        FailoverStateMachine s = machine(Role.SECONDARY, 4);
        s.doWork(clock.advanceMs(400));
        s.onHeartbeat(4, clock.advanceMs(10));
        assertThat(s.state()).isEqualTo(State.STANDBY);
    }

    @Test
    void anOldPrimaryThatLearnsOfANewerTermFencesItself() {
        FailoverStateMachine p = machine(Role.PRIMARY, 9);
        p.doWork(clock.advanceMs(400));
        p.onVerdict(new Verdict(true, false, "witness answered"), clock.advanceMs(5));
        p.doWork(clock.advanceMs(1_500));
        assertThat(p.state()).isEqualTo(State.UNPROTECTED);
        p.onHeartbeat(10, clock.advanceMs(100)); // the other side promoted at 10
        assertThat(p.state()).isEqualTo(State.FENCED);
        assertThat(transitions.get(transitions.size() - 1).reason()).contains("term 10, newer than our 9");
    }

    /**
     * Two machines and a world of faults the issue names: replication link partitions while both
     * hosts live (LAN and witness reachable), crashes of either host, a flapping witness. After
     * every step, never two nodes releasing output at once.
     */
    @Test
    void neverTwoReleasingPrimariesUnderRandomPartitionsAndCrashes() {
        Seeds.forEach(300, 40_000, FailoverStateMachineTest::chaos);
    }

    static void chaos(long seed) {
        Random rnd = new Random(seed);
        ManualClock clock = new ManualClock();
        List<String> pLog = new ArrayList<>();
        List<String> sLog = new ArrayList<>();
        Actions pa = new Actions();
        Actions sa = new Actions();
        FailoverStateMachine p = new FailoverStateMachine(Role.PRIMARY, 1, TIMEOUT, LEASE, 2_000 * MS, pa, t -> pLog.add(t.toString()), clock.nowNs());
        FailoverStateMachine s = new FailoverStateMachine(Role.SECONDARY, 1, TIMEOUT, LEASE, 2_000 * MS, sa, t -> sLog.add(t.toString()), clock.nowNs());
        boolean toSecondary = true; // each direction of the replication link fails on its own
        boolean toPrimary = true;
        boolean primaryServedPastTheSvm = false;
        boolean primaryAlive = true;
        boolean secondaryAlive = true;
        boolean witnessUp = true;
        for (int step = 0; step < 400; step++) {
            long now = clock.advanceMs(10 + rnd.nextInt(60));
            int dice = rnd.nextInt(100);
            if (dice < 2) {
                toSecondary = !toSecondary;
            } else if (dice < 4) {
                toPrimary = !toPrimary;
            } else if (dice < 5 && primaryAlive && secondaryAlive) {
                primaryAlive = false;
            } else if (dice < 6 && primaryAlive && secondaryAlive) {
                secondaryAlive = false;
            } else if (dice < 9) {
                witnessUp = !witnessUp;
            }
            if (toPrimary && primaryAlive && secondaryAlive) {
                p.onHeartbeat(s.term(), now);
            }
            if (toSecondary && primaryAlive && secondaryAlive) {
                // The primary echoes the secondary's newest heartbeat it got: sent now if that direction works.
                s.onHeartbeat(p.term(), now);
                s.onPeerHeartbeat(p.echoesPeer() && toPrimary ? now : 0, p.servesAlone(), now);
            }
            if (primaryAlive) {
                p.doWork(now);
                if (!pa.log.isEmpty() && pa.log.get(pa.log.size() - 1).equals("probe")) {
                    pa.log.add("answered");
                    p.onVerdict(new Verdict(witnessUp, secondaryAlive, "chaos"), now);
                }
            }
            if (secondaryAlive) {
                s.doWork(now);
                if (!sa.log.isEmpty() && sa.log.get(sa.log.size() - 1).equals("probe")) {
                    sa.log.add("answered");
                    // The primary is reachable over the LAN exactly when it is alive: link partitions cut only the replication link.
                    s.onVerdict(new Verdict(witnessUp, primaryAlive, "chaos"), now);
                }
            }
            boolean pReleasing = primaryAlive && p.releasing();
            boolean sReleasing = secondaryAlive && s.releasing();
            assertThat(pReleasing && sReleasing).as("two releasing primaries at step %d: primary %s, secondary %s", step, pLog, sLog).isFalse();
            primaryServedPastTheSvm |= primaryAlive && p.state() == State.UNPROTECTED;
            assertThat(primaryServedPastTheSvm && s.state() == State.ACTIVE)
                    .as("the secondary promoted an SVM the primary had served past, at step %d: primary %s, secondary %s", step, pLog, sLog)
                    .isFalse();
        }
    }
}
