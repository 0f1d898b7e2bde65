package dev.colo.checkpoint.coordinator;

import java.util.ArrayList;
import java.util.List;
import java.util.function.Consumer;

/**
 * Runs checkpoints one at a time. Pure: no threads, no clock, no IO; every change of state passes
 * through {@link #state}, which validates it and reports it with its reason.
 *
 * <p>Epochs grow by one per committed checkpoint: an aborted attempt at epoch N is retried as N.
 * A failure at any step resumes the PVM if it may be paused, abandons the attempt (the previous SVM
 * keeps running, its input comes back to it) and makes the next checkpoint full. PVM output held
 * before checkpoint N leaves only when the secondary acknowledges N.
 */
public final class CheckpointCoordinator {

    /** Where the coordinator is. */
    public enum State {
        /** Nothing in flight. */
        IDLE,
        PAUSING,
        CAPTURING,
        RESUMING,
        SHIPPING,
        AWAITING_ACK,
        /** An attempt failed while the PVM may be paused: resuming it before anything else. */
        ABORT_RESUMING,
        /** Waiting out the backoff after an abort before the full resync. */
        BACKOFF
    }

    /** A state change, for the daemon's log. */
    public record Transition(State from, State to, long epoch, String reason, long atNs) {}

    private final CoordinatorConfig config;
    private final CheckpointActions actions;
    private final Consumer<Transition> onTransition;
    private State state = State.IDLE;
    private long committedEpoch;
    private long stateSinceNs;
    private long lastCommitNs;
    private boolean needFull = true;
    private boolean started;
    // The attempt in flight.
    private Trigger trigger;
    private String reason;
    private boolean full;
    private long attemptStartNs;
    private long pausedAtNs;
    private long pausedNs;
    private long dirtyPages;
    private long rawBytes;
    private long wireBytes;
    private long deviceBytes;
    private String abortReason;
    // Triggers that arrived while busy, coalesced into one next checkpoint.
    private Trigger pendingTrigger;
    private String pendingReason;
    private int coalesced;

    public CheckpointCoordinator(CoordinatorConfig config, CheckpointActions actions, Consumer<Transition> onTransition,
            long committedEpoch) {
        this.config = config;
        this.actions = actions;
        this.onTransition = onTransition;
        this.committedEpoch = committedEpoch;
    }

    public State state() {
        return state;
    }

    public long committedEpoch() {
        return committedEpoch;
    }

    /** The epoch of the attempt in flight, or the next one. */
    public long inFlightEpoch() {
        return committedEpoch + 1;
    }

    public int coalescedTriggers() {
        return coalesced;
    }

    /** The single gate for every state change. */
    private void state(State next, long nowNs, String why) {
        if (!allowed(state, next)) {
            throw new IllegalStateException("checkpoint coordinator: illegal transition " + state + " -> " + next + " (" + why + ")");
        }
        Transition t = new Transition(state, next, inFlightEpoch(), why, nowNs);
        state = next;
        stateSinceNs = nowNs;
        onTransition.accept(t);
    }

    private static boolean allowed(State from, State to) {
        return switch (from) {
            case IDLE -> to == State.PAUSING;
            case PAUSING -> to == State.CAPTURING || to == State.ABORT_RESUMING;
            case CAPTURING -> to == State.RESUMING || to == State.ABORT_RESUMING;
            case RESUMING -> to == State.SHIPPING || to == State.ABORT_RESUMING;
            case SHIPPING -> to == State.AWAITING_ACK || to == State.BACKOFF;
            case AWAITING_ACK -> to == State.IDLE || to == State.BACKOFF;
            case ABORT_RESUMING -> to == State.BACKOFF;
            case BACKOFF -> to == State.PAUSING || to == State.IDLE;
        };
    }

    // --- triggers ---

    /** Asks for a checkpoint; coalesced with any in flight. */
    public void onTrigger(Trigger t, String why, long nowNs) {
        if (state == State.IDLE) {
            begin(t, why, nowNs);
            return;
        }
        coalesced++;
        if (pendingTrigger == null) {
            pendingTrigger = t;
            pendingReason = why;
        }
    }

    /** Starts protection: the first checkpoint is a full one. */
    public void start(long nowNs) {
        started = true;
        lastCommitNs = nowNs;
        onTrigger(Trigger.RESYNC, "first checkpoint of the pair", nowNs);
    }

    private void begin(Trigger t, String why, long nowNs) {
        trigger = t;
        reason = why;
        full = needFull;
        attemptStartNs = nowNs;
        pausedNs = dirtyPages = rawBytes = wireBytes = deviceBytes = 0;
        abortReason = null;
        state(State.PAUSING, nowNs, t.name().toLowerCase() + ": " + why);
        actions.pause(inFlightEpoch());
    }

    // --- step outcomes ---

    public void onPaused(long epoch, long nowNs) {
        if (!current(epoch, State.PAUSING)) {
            return;
        }
        pausedAtNs = nowNs;
        actions.snapshot(epoch);
        state(State.CAPTURING, nowNs, "PVM paused");
        actions.capture(epoch, full);
    }

    public void onCaptured(long epoch, long pages, long raw, long wire, long deviceStateBytes, long nowNs) {
        if (!current(epoch, State.CAPTURING)) {
            return;
        }
        dirtyPages = pages;
        rawBytes = raw;
        wireBytes = wire;
        deviceBytes = deviceStateBytes;
        state(State.RESUMING, nowNs, pages + " dirty pages and " + deviceStateBytes + " bytes of device state captured");
        actions.resume(epoch);
    }

    public void onResumed(long epoch, long nowNs) {
        if (epoch != inFlightEpoch()) {
            return;
        }
        if (state == State.ABORT_RESUMING) {
            pausedNs = nowNs - pausedAtNs;
            finishAbort(nowNs);
            return;
        }
        if (state != State.RESUMING) {
            return;
        }
        pausedNs = nowNs - pausedAtNs;
        state(State.SHIPPING, nowNs, "PVM running again after " + pausedNs / 1_000 + " us");
        actions.ship(epoch);
    }

    public void onShipped(long epoch, long wire, long nowNs) {
        if (!current(epoch, State.SHIPPING)) {
            return;
        }
        wireBytes = wire;
        state(State.AWAITING_ACK, nowNs, "checkpoint shipped, " + wire + " bytes on the wire");
    }

    public void onAck(long epoch, long svmReadyNs, long nowNs) {
        if (current(epoch, State.SHIPPING)) {
            // A fast secondary can answer before our own "shipped" event is processed.
            state(State.AWAITING_ACK, nowNs, "acknowledged before the ship step reported back");
        }
        if (!current(epoch, State.AWAITING_ACK)) {
            return;
        }
        committedEpoch = epoch;
        lastCommitNs = nowNs;
        needFull = false;
        actions.release(epoch);
        actions.record(new CheckpointRecord(epoch, trigger, reason, full, "committed", pausedNs, dirtyPages, rawBytes, wireBytes,
                deviceBytes, svmReadyNs, nowNs - attemptStartNs));
        state(State.IDLE, nowNs, "secondary runs the SVM of epoch " + epoch);
        startPending(nowNs);
    }

    /** A step failed (QMP error, stream cut, CRC mismatch, secondary refused, link down). */
    public void onStepFailed(long epoch, Step step, String why, long nowNs) {
        if (epoch != inFlightEpoch() || state == State.IDLE || state == State.BACKOFF || state == State.ABORT_RESUMING) {
            return;
        }
        abort(step.name().toLowerCase() + " failed: " + why, nowNs);
    }

    private boolean current(long epoch, State expected) {
        return epoch == inFlightEpoch() && state == expected;
    }

    // --- aborts ---

    private void abort(String why, long nowNs) {
        abortReason = why;
        needFull = true;
        if (state == State.PAUSING || state == State.CAPTURING || state == State.RESUMING) {
            // The PVM may be paused: never leave it so.
            state(State.ABORT_RESUMING, nowNs, why + "; resuming the PVM");
            actions.resume(inFlightEpoch());
            return;
        }
        finishAbort(nowNs);
    }

    private void finishAbort(long nowNs) {
        long epoch = inFlightEpoch();
        actions.abandon(epoch, abortReason);
        actions.record(new CheckpointRecord(epoch, trigger, reason, full, "aborted: " + abortReason, pausedNs, dirtyPages, rawBytes,
                wireBytes, deviceBytes, 0, nowNs - attemptStartNs));
        state(State.BACKOFF, nowNs, abortReason + "; full resync in " + config.retryBackoffNs() / 1_000_000 + " ms");
    }

    // --- time ---

    /** Timeouts, the backoff, and the maximum interval. */
    public void doWork(long nowNs) {
        switch (state) {
            case IDLE -> {
                if (started && config.maxIntervalNs() > 0 && nowNs - lastCommitNs >= config.maxIntervalNs()) {
                    begin(Trigger.MAX_INTERVAL, "no checkpoint for " + (nowNs - lastCommitNs) / 1_000_000 + " ms", nowNs);
                }
            }
            case BACKOFF -> {
                if (nowNs - stateSinceNs >= config.retryBackoffNs()) {
                    Trigger t = pendingTrigger != null ? pendingTrigger : Trigger.RESYNC;
                    String why = pendingTrigger != null ? pendingReason + " (after an aborted checkpoint)" : "resync after: " + abortReason;
                    pendingTrigger = null;
                    pendingReason = null;
                    begin(t, why, nowNs);
                }
            }
            case ABORT_RESUMING -> {
                if (nowNs - stateSinceNs >= config.resumeTimeoutNs()) {
                    // The PVM will not resume: ask again and say so; the failover logic sees it too.
                    stateSinceNs = nowNs;
                    onTransition.accept(new Transition(state, state, inFlightEpoch(), "PVM still paused, asking it to resume again", nowNs));
                    actions.resume(inFlightEpoch());
                }
            }
            default -> {
                Step step = stepOf(state);
                if (nowNs - stateSinceNs >= config.timeoutOf(step)) {
                    abort(step.name().toLowerCase() + " timed out after " + (nowNs - stateSinceNs) / 1_000_000 + " ms", nowNs);
                }
            }
        }
    }

    private static Step stepOf(State s) {
        return switch (s) {
            case PAUSING -> Step.PAUSE;
            case CAPTURING -> Step.CAPTURE;
            case RESUMING -> Step.RESUME;
            case SHIPPING -> Step.SHIP;
            case AWAITING_ACK -> Step.ACK;
            default -> throw new IllegalArgumentException(s.name());
        };
    }

    private void startPending(long nowNs) {
        if (pendingTrigger != null) {
            Trigger t = pendingTrigger;
            String why = pendingReason;
            pendingTrigger = null;
            pendingReason = null;
            begin(t, why, nowNs);
        }
    }

    /** Transitions seen so far are reported through the callback; this lists the legal ones (docs, tests). */
    public static List<String> legalTransitions() {
        List<String> out = new ArrayList<>();
        for (State a : State.values()) {
            for (State b : State.values()) {
                if (allowed(a, b)) {
                    out.add(a + " -> " + b);
                }
            }
        }
        return out;
    }
}
