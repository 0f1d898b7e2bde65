package dev.colo.daemon.failover;

import java.util.function.Consumer;

/**
 * Decides who serves clients. Pure: no threads, no clock, no IO.
 *
 * <p>Primary: heartbeats stop, output is held and the witness is asked. If the witness answers, the
 * primary runs unprotected (the secondary is the one gone); if not, it fences itself (it may be the
 * one cut off, and the secondary may take over). Secondary: heartbeats stop, the witness is asked;
 * it promotes only if the witness answers <em>and</em> the primary cannot be reached over the LAN
 * either, so a broken replication link alone never makes two primaries. Any node that learns of a
 * newer epoch than its own while acting as primary fences itself.
 */
public final class FailoverStateMachine {

    public enum Role { PRIMARY, SECONDARY }

    public enum State {
        /** Primary with a secondary: output released on match or commit. */
        PROTECTED,
        /** Primary lost the secondary: output held while the witness is asked. */
        SUSPECT,
        /** Primary without a secondary: output released as is. */
        UNPROTECTED,
        /** Secondary following the primary. */
        STANDBY,
        /** Secondary lost the primary: asking the witness. */
        PROBING,
        /** Secondary took over: now the primary, unprotected. */
        ACTIVE,
        /** Not allowed to release output: another node is primary. */
        FENCED
    }

    /** A state change and its evidence, for the operator log. */
    public record Transition(State from, State to, long epoch, String reason, long atNs) {}

    /** The witness's verdict. */
    public record Verdict(boolean witnessAnswered, boolean peerReachableOverLan, String evidence) {}

    private final FailoverActions actions;
    private final Consumer<Transition> onTransition;
    private final long heartbeatTimeoutNs;
    private final long reprotectBackoffNs;
    private State state;
    private long epoch;
    private long lastHeartbeatNs;
    private long stateSinceNs;

    public FailoverStateMachine(Role role, long epoch, long heartbeatTimeoutNs, long reprotectBackoffNs, FailoverActions actions,
            Consumer<Transition> onTransition, long nowNs) {
        this.actions = actions;
        this.onTransition = onTransition;
        this.heartbeatTimeoutNs = heartbeatTimeoutNs;
        this.reprotectBackoffNs = reprotectBackoffNs;
        this.epoch = epoch;
        this.state = role == Role.PRIMARY ? State.PROTECTED : State.STANDBY;
        this.lastHeartbeatNs = nowNs;
        this.stateSinceNs = nowNs;
    }

    public State state() {
        return state;
    }

    public long epoch() {
        return epoch;
    }

    /** True while this node may release output to clients. */
    public boolean releasing() {
        return state == State.PROTECTED || state == State.UNPROTECTED || state == State.ACTIVE;
    }

    private void state(State next, long nowNs, String why) {
        if (!allowed(state, next)) {
            throw new IllegalStateException("failover: illegal transition " + state + " -> " + next + " (" + why + ")");
        }
        Transition t = new Transition(state, next, epoch, why, nowNs);
        state = next;
        stateSinceNs = nowNs;
        onTransition.accept(t);
    }

    static boolean allowed(State from, State to) {
        return switch (from) {
            case PROTECTED -> to == State.SUSPECT || to == State.FENCED;
            case SUSPECT -> to == State.UNPROTECTED || to == State.FENCED || to == State.PROTECTED;
            case UNPROTECTED -> to == State.PROTECTED || to == State.FENCED;
            case STANDBY -> to == State.PROBING;
            case PROBING -> to == State.ACTIVE || to == State.STANDBY;
            case ACTIVE -> to == State.FENCED;
            case FENCED -> false;
        };
    }

    // --- events ---

    /** A heartbeat from the peer, carrying its epoch. */
    public void onHeartbeat(long peerEpoch, long nowNs) {
        lastHeartbeatNs = nowNs;
        if (peerEpoch > epoch && (releasing() || state == State.SUSPECT)) {
            fence("peer is at epoch " + peerEpoch + ", newer than our " + epoch + ": it took over", nowNs);
            return;
        }
        switch (state) {
            case SUSPECT -> state(State.PROTECTED, nowNs, "heartbeat back before the witness answered");
            case PROBING -> state(State.STANDBY, nowNs, "primary heartbeat back");
            default -> {
                // nothing to change
            }
        }
    }

    /** A checkpoint committed: the pair is at {@code e}. */
    public void onEpoch(long e) {
        epoch = Math.max(epoch, e);
    }

    /** The secondary is back and paired again (first checkpoint done). */
    public void onReprotected(long e, long nowNs) {
        if (state == State.UNPROTECTED) {
            epoch = Math.max(epoch, e);
            state(State.PROTECTED, nowNs, "secondary protecting again from epoch " + e);
        }
    }

    public void onVerdict(Verdict v, long nowNs) {
        switch (state) {
            case SUSPECT -> {
                if (v.witnessAnswered()) {
                    state(State.UNPROTECTED, nowNs, "secondary lost, witness answered (" + v.evidence() + "): serving unprotected");
                    actions.runUnprotected();
                } else {
                    fence("secondary lost and witness silent (" + v.evidence() + "): we may be the one cut off", nowNs);
                }
            }
            case PROBING -> {
                if (v.witnessAnswered() && !v.peerReachableOverLan()) {
                    epoch++;
                    state(State.ACTIVE, nowNs, "primary lost, witness answered, primary unreachable over the LAN (" + v.evidence()
                            + "): promoting at epoch " + epoch);
                    actions.promote(epoch);
                } else {
                    // Not enough evidence to take over: ask again on the next tick.
                    stateSinceNs = nowNs;
                    onTransition.accept(new Transition(state, state, epoch, (v.witnessAnswered()
                            ? "primary still reachable over the LAN: only the replication link is down, not promoting"
                            : "witness silent: not promoting") + " (" + v.evidence() + ")", nowNs));
                }
            }
            default -> {
                // A late verdict; nothing depends on it any more.
            }
        }
    }

    private void fence(String why, long nowNs) {
        state(State.FENCED, nowNs, why);
        actions.fence(why);
    }

    /** Heartbeat timeouts, re-probing, re-protection backoff. */
    public void doWork(long nowNs) {
        long silent = nowNs - lastHeartbeatNs;
        switch (state) {
            case PROTECTED -> {
                if (silent > heartbeatTimeoutNs) {
                    state(State.SUSPECT, nowNs, "no heartbeat from the secondary for " + silent / 1_000_000 + " ms; holding output, asking the witness");
                    actions.holdOutput();
                    actions.probe();
                }
            }
            case STANDBY -> {
                if (silent > heartbeatTimeoutNs) {
                    state(State.PROBING, nowNs, "no heartbeat from the primary for " + silent / 1_000_000 + " ms; asking the witness");
                    actions.probe();
                }
            }
            case PROBING, SUSPECT -> {
                if (nowNs - stateSinceNs > heartbeatTimeoutNs) {
                    stateSinceNs = nowNs;
                    actions.probe();
                }
            }
            case UNPROTECTED -> {
                if (silent < heartbeatTimeoutNs && nowNs - stateSinceNs > reprotectBackoffNs) {
                    stateSinceNs = nowNs;
                    actions.reprotect();
                }
            }
            default -> {
                // ACTIVE and FENCED wait for the operator or re-protection.
            }
        }
    }
}
