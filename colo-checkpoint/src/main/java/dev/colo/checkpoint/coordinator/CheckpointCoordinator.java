package dev.colo.checkpoint.coordinator;

import java.util.ArrayList;
import java.util.List;
import java.util.function.Consumer;

/**
 * Runs checkpoints one at a time. Pure: no threads, no clock, no IO; every change of state passes
 * through {@link #state}, which validates it and reports it with its reason.
 *
 * <p>Every attempt gets its own checkpoint sequence number, one more than the last attempt's: an
 * aborted attempt's number is never used again, so nothing buffered for it can be mistaken for the
 * retry's. A failure at any step resumes the PVM if it may be paused, abandons the attempt (the
 * previous SVM keeps running and keeps getting its input) and makes the next checkpoint full. PVM
 * output produced before snapshot N leaves, if not matched before, when the secondary acknowledges N.
 *
 * <p>A switchover is a checkpoint that never resumes the PVM: once the secondary runs its SVM, the
 * coordinator hands over and stops ({@link State#HANDED_OVER}); if it fails, the PVM is resumed.
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
        BACKOFF,
        /** A switchover committed: the PVM stays paused and the secondary serves. Final. */
        HANDED_OVER
    }

    /** A state change, for the daemon's log. */
    public record Transition(State from, State to, long seq, String reason, long atNs) {}

    private final CoordinatorConfig config;
    private final CheckpointActions actions;
    private final Consumer<Transition> onTransition;
    private State state = State.IDLE;
    /** The last committed checkpoint: the running SVM was loaded from it. */
    private long committedSeq;
    /** The number of the attempt in flight, or of the last one. */
    private long attemptSeq;
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
    private boolean handover;
    // Triggers that arrived while busy, coalesced into one next checkpoint.
    private Trigger pendingTrigger;
    private String pendingReason;
    private int coalesced;

    public CheckpointCoordinator(CoordinatorConfig config, CheckpointActions actions, Consumer<Transition> onTransition,
            long lastSeq) {
        this.config = config;
        this.actions = actions;
        this.onTransition = onTransition;
        this.committedSeq = lastSeq;
        this.attemptSeq = lastSeq;
    }

    public State state() {
        return state;
    }

    public long committedSeq() {
        return committedSeq;
    }

    /** The sequence number of the attempt in flight (or of the last attempt, when idle). */
    public long attemptSeq() {
        return attemptSeq;
    }

    public int coalescedTriggers() {
        return coalesced;
    }

    /** The single gate for every state change. */
    private void state(State next, long nowNs, String why) {
        if (!allowed(state, next)) {
            throw new IllegalStateException("checkpoint coordinator: illegal transition " + state + " -> " + next + " (" + why + ")");
        }
        Transition t = new Transition(state, next, attemptSeq, why, nowNs);
        state = next;
        stateSinceNs = nowNs;
        onTransition.accept(t);
    }

    private static boolean allowed(State from, State to) {
        return switch (from) {
            case IDLE -> to == State.PAUSING;
            case PAUSING -> to == State.CAPTURING || to == State.ABORT_RESUMING;
            // A switchover goes from capture straight to shipping: its PVM is never resumed.
            case CAPTURING -> to == State.RESUMING || to == State.SHIPPING || to == State.ABORT_RESUMING;
            case RESUMING -> to == State.SHIPPING || to == State.ABORT_RESUMING;
            case SHIPPING -> to == State.AWAITING_ACK || to == State.BACKOFF || to == State.ABORT_RESUMING;
            case AWAITING_ACK -> to == State.IDLE || to == State.BACKOFF || to == State.ABORT_RESUMING || to == State.HANDED_OVER;
            case ABORT_RESUMING -> to == State.BACKOFF;
            case BACKOFF -> to == State.PAUSING || to == State.IDLE;
            case HANDED_OVER -> false;
        };
    }

    // --- triggers ---

    /** Asks for a checkpoint; coalesced with any in flight. A switchover request wins over others. */
    public void onTrigger(Trigger t, String why, long nowNs) {
        if (state == State.HANDED_OVER) {
            return;
        }
        if (state == State.IDLE) {
            begin(t, why, nowNs);
            return;
        }
        coalesced++;
        if (pendingTrigger == null || t == Trigger.SWITCHOVER) {
            pendingTrigger = t;
            pendingReason = why;
        }
    }

    /** Starts protection: the first checkpoint is a full one. */
    public void start(long nowNs) {
        start(nowNs, false);
    }

    /**
     * Starts protection. With {@code precopied}, guest RAM already went to the secondary while the
     * PVM ran, so the first checkpoint ships only what changed since (not full); if it fails, the
     * next one is full as after any abort.
     */
    public void start(long nowNs, boolean precopied) {
        started = true;
        lastCommitNs = nowNs;
        if (precopied) {
            needFull = false;
        }
        onTrigger(Trigger.RESYNC, precopied ? "first checkpoint of the pair, after the RAM pre-copy" : "first checkpoint of the pair", nowNs);
    }

    private void begin(Trigger t, String why, long nowNs) {
        attemptSeq++;
        trigger = t;
        reason = why;
        handover = t == Trigger.SWITCHOVER;
        full = needFull;
        attemptStartNs = nowNs;
        pausedNs = dirtyPages = rawBytes = wireBytes = deviceBytes = 0;
        abortReason = null;
        state(State.PAUSING, nowNs, t.name().toLowerCase() + ": " + why);
        actions.pause(attemptSeq);
    }

    // --- step outcomes ---

    public void onPaused(long seq, long nowNs) {
        if (!current(seq, State.PAUSING)) {
            return;
        }
        pausedAtNs = nowNs;
        actions.snapshot(seq);
        state(State.CAPTURING, nowNs, "PVM paused");
        actions.capture(seq, full);
    }

    public void onCaptured(long seq, long pages, long raw, long wire, long deviceStateBytes, long nowNs) {
        if (!current(seq, State.CAPTURING)) {
            return;
        }
        dirtyPages = pages;
        rawBytes = raw;
        wireBytes = wire;
        deviceBytes = deviceStateBytes;
        String captured = pages + " dirty pages and " + deviceStateBytes + " bytes of device state captured";
        if (handover) {
            pausedNs = nowNs - pausedAtNs;
            state(State.SHIPPING, nowNs, captured + "; switchover: the PVM stays paused");
            actions.ship(seq);
            return;
        }
        state(State.RESUMING, nowNs, captured);
        actions.resume(seq);
    }

    public void onResumed(long seq, long nowNs) {
        if (seq != attemptSeq) {
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
        actions.ship(seq);
    }

    public void onShipped(long seq, long wire, long nowNs) {
        if (!current(seq, State.SHIPPING)) {
            return;
        }
        wireBytes = wire;
        state(State.AWAITING_ACK, nowNs, "checkpoint shipped, " + wire + " bytes on the wire");
    }

    public void onAck(long seq, long svmReadyNs, long nowNs) {
        if (current(seq, State.SHIPPING)) {
            // A fast secondary can answer before our own "shipped" event is processed.
            state(State.AWAITING_ACK, nowNs, "acknowledged before the ship step reported back");
        }
        if (!current(seq, State.AWAITING_ACK)) {
            return;
        }
        committedSeq = seq;
        lastCommitNs = nowNs;
        needFull = false;
        actions.release(seq);
        actions.record(new CheckpointRecord(seq, trigger, reason, full, "committed", pausedNs, dirtyPages, rawBytes, wireBytes,
                deviceBytes, svmReadyNs, nowNs - attemptStartNs));
        if (handover) {
            state(State.HANDED_OVER, nowNs, "secondary runs the SVM of checkpoint " + seq + "; handing over, the PVM stays paused");
            actions.handOver(seq);
            return;
        }
        state(State.IDLE, nowNs, "secondary runs the SVM of checkpoint " + seq);
        startPending(nowNs);
    }

    /** A step failed (QMP error, stream cut, CRC mismatch, secondary refused, link down). */
    public void onStepFailed(long seq, Step step, String why, long nowNs) {
        if (seq != attemptSeq || state == State.IDLE || state == State.BACKOFF || state == State.ABORT_RESUMING
                || state == State.HANDED_OVER) {
            return;
        }
        abort(step.name().toLowerCase() + " failed: " + why, nowNs);
    }

    private boolean current(long seq, State expected) {
        return seq == attemptSeq && state == expected;
    }

    // --- aborts ---

    private void abort(String why, long nowNs) {
        abortReason = why;
        needFull = true;
        boolean mayBePaused = state == State.PAUSING || state == State.CAPTURING || state == State.RESUMING
                || (handover && (state == State.SHIPPING || state == State.AWAITING_ACK));
        if (mayBePaused) {
            // The PVM may be paused: never leave it so (a failed switchover resumes it too).
            state(State.ABORT_RESUMING, nowNs, why + "; resuming the PVM");
            actions.resume(attemptSeq);
            return;
        }
        finishAbort(nowNs);
    }

    private void finishAbort(long nowNs) {
        long seq = attemptSeq;
        handover = false;
        actions.abandon(seq, abortReason);
        actions.record(new CheckpointRecord(seq, trigger, reason, full, "aborted: " + abortReason, pausedNs, dirtyPages, rawBytes,
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
                    // A switchover asked for meanwhile (the operator's retry after a failed one)
                    // goes on: it is full like any checkpoint after an abort. Turned into a resync,
                    // the operator's command waited for a switchover that never came.
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
                    onTransition.accept(new Transition(state, state, attemptSeq, "PVM still paused, asking it to resume again", nowNs));
                    actions.resume(attemptSeq);
                }
            }
            case HANDED_OVER -> {
                // final
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
