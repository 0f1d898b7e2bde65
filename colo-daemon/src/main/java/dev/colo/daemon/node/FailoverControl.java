package dev.colo.daemon.node;

import dev.colo.checkpoint.link.proto.Heartbeat;
import dev.colo.daemon.config.DaemonConfig;
import dev.colo.daemon.events.EventJournal;
import dev.colo.daemon.failover.FailoverActions;
import dev.colo.daemon.failover.FailoverStateMachine;
import dev.colo.daemon.failover.FailoverStateMachine.State;
import dev.colo.daemon.failover.FailoverStateMachine.Transition;
import dev.colo.daemon.metrics.DaemonMetrics;
import dev.colo.runtime.Lane;
import dev.colo.runtime.NodeIdentity;
import dev.colo.runtime.NodeRuntime;
import java.util.function.Supplier;

/**
 * The failover state machine of a node and what drives it: heartbeats out, liveness in (every
 * message from the peer counts), the witness probe, and the machine's actions handed to the role.
 * Everything runs on the control lane; {@link #term()} and {@link #actsAsPrimary()} are readable
 * from any lane.
 */
final class FailoverControl {
    /** What the state machine asks of the node's role. */
    interface Target {
        void holdOutput();

        void resumeProtected();

        void runUnprotected();

        void reprotect();

        void promote(long term);

        void fence(String reason);

        /** Secondary: the SVM is stale; retire it. */
        default void abandonSvm(String reason) {
        }

        /** Secondary: ICMP echo replies the running SVM has sent so far (it gets pings only through the primary). */
        default long svmEchoReplies() {
            return 0;
        }
    }

    private final DaemonConfig cfg;
    private final NodeRuntime runtime;
    private final Lane control;
    private final EventJournal events;
    private final DaemonMetrics metrics;
    private final NodeIdentity identity;
    private final WitnessProbe probe;
    private final PeerLink link;
    private final Supplier<Target> target;
    private FailoverStateMachine sm;
    private Envelopes envelopes;
    private long lastHeartbeatNs;
    private volatile long term;
    private volatile boolean actsAsPrimary;
    private volatile long lastRxNs;
    private volatile long lastRxTerm;
    /** The send time (the peer's clock) of the newest heartbeat from the peer; control lane. */
    private long peerSentNs;
    /** The peer's newest heartbeat in this link session said it follows us (1), or not (0); -1: none yet. */
    private volatile int peerFollows = -1;
    private final Reachability reach;
    /** Secondary: since when the primary has been silent to us (-1: it is not). */
    private long silentSinceNs = -1;
    private boolean watchInFlight;
    private long lastWatchNs;
    private dev.colo.runtime.Cancellable ticker = dev.colo.runtime.Cancellable.NONE;

    FailoverControl(DaemonConfig cfg, NodeRuntime runtime, EventJournal events, DaemonMetrics metrics, Reachability reach, PeerLink link,
            Supplier<Target> target) {
        this.reach = reach;
        this.cfg = cfg;
        this.runtime = runtime;
        this.control = runtime.lane("control");
        this.events = events;
        this.metrics = metrics;
        this.identity = runtime.identity();
        this.probe = new WitnessProbe(reach, runtime.clock());
        this.link = link;
        this.target = target;
    }

    /** Creates the machine in the configured role's starting state and starts the heartbeat. */
    void start(boolean primary, Envelopes env) {
        this.envelopes = env;
        long now = runtime.nowNs();
        long timeout = cfg.link().heartbeatTimeoutMs() * 1_000_000L;
        // The secondary waits longer than the primary: after a link cut the primary has decided
        // (unprotected, or fenced) before the secondary asks whether anyone still serves the VM.
        long smTimeout = primary ? timeout : cfg.secondaryTimeoutMs() * 1_000_000L;
        sm = new FailoverStateMachine(primary ? State.UNPROTECTED : State.IDLE, 0, smTimeout, cfg.promotionLeaseMs() * 1_000_000L,
                cfg.vm().reprotectBackoffMs() * 1_000_000L, new Actions(), this::onTransition, now);
        lastHeartbeatNs = now;
        mirror();
        long interval = cfg.link().heartbeatIntervalMs() * 1_000_000L;
        ticker = control.every(interval, interval, this::tick);
    }

    void stop() {
        ticker.cancel();
    }

    FailoverStateMachine machine() {
        return sm;
    }

    State state() {
        return sm.state();
    }

    long term() {
        return term;
    }

    boolean actsAsPrimary() {
        return actsAsPrimary;
    }

    long lastHeartbeatNs() {
        return lastHeartbeatNs;
    }

    /** The link closed: what arrived before it proves nothing about the peer any more. Control lane. */
    void onLinkClosed(String why) {
        lastHeartbeatNs = Math.max(lastHeartbeatNs, lastRxNs);
        peerFollows = -1; // a new session proves it again: the peer's daemon may have restarted
        sm.onLinkClosed(why, runtime.nowNs());
        mirror();
    }

    /** Anything arrived from the peer (any lane): the next tick turns it into a heartbeat. */
    void onPeerAlive(long peerTerm) {
        lastRxTerm = peerTerm;
        lastRxNs = runtime.nowNs();
    }

    /** A heartbeat arrived (any lane): its send time is echoed back, its echo renews our lease. */
    void onPeerHeartbeat(Heartbeat hb) {
        peerFollows = hb.getFollows() ? 1 : 0;
        control.execute(() -> {
            if (sm == null) {
                return;
            }
            peerSentNs = Math.max(peerSentNs, hb.getSentNs());
            sm.onPeerHeartbeat(hb.getEchoNs(), hb.getServesAlone(), runtime.nowNs());
            mirror();
        });
    }

    private void tick() {
        long now = runtime.nowNs();
        if (link.connected()) {
            link.send(envelopes.builder().setHeartbeat(Heartbeat.newBuilder().setSentNs(now).setEchoNs(sm.echoesPeer() ? peerSentNs : 0)
                    .setServesAlone(sm.servesAlone()).setFollows(sm.follows())).build());
        }
        long rx = lastRxNs;
        int follows = peerFollows;
        // Holding for a secondary (SUSPECT), only its heartbeat tells whether it still runs an SVM:
        // a restarted daemon's first words must not restore protection, so a heartbeat whose
        // follows flag is not yet known (-1, a new session) counts for nothing there.
        boolean fresh = rx > lastHeartbeatNs;
        boolean holding = sm.state() == State.SUSPECT;
        if (fresh && holding && follows == 0) {
            lastHeartbeatNs = rx;
            sm.onSecondaryWithoutSvm(rx);
        } else if (fresh && (!holding || follows == 1)) {
            lastHeartbeatNs = rx;
            sm.onHeartbeat(lastRxTerm, rx);
        }
        sm.doWork(now);
        watchVmAddress(now);
        mirror();
        metrics.term.labelValues(identity.vm()).set(sm.term());
        for (State st : State.values()) {
            metrics.state.labelValues(identity.vm(), st.name()).set(st == sm.state() ? 1 : 0);
        }
        metrics.linkUp.labelValues(identity.vm()).set(link.connected() ? 1 : 0);
    }

    private static final long WATCH_PERIOD_NS = 100_000_000L;

    /**
     * Secondary: from the moment the primary falls silent, ask over the LAN whether the VM still
     * answers. If it does while the primary says nothing to us, the primary serves without us (it
     * outlived the link) and our SVM must never be promoted: promoting it after the primary dies
     * would roll back everything clients were told since. Only a VM silent all along may be
     * taken over.
     *
     * <p>An answer counts only if our SVM sent no echo reply meanwhile: the SVM gets pings only
     * through the primary, so if it answered one, the primary still forwards to us and protects,
     * and the answer we got was released because it matched the SVM's own. Heartbeats can be late
     * on a busy pair while everything else flows; such an answer once retired a sound SVM.
     */
    private void watchVmAddress(long now) {
        State st = sm.state();
        boolean following = st == State.STANDBY || st == State.PROBING;
        boolean silent = now - lastHeartbeatNs > 3 * cfg.link().heartbeatIntervalMs() * 1_000_000L || !link.connected();
        if (!following || !silent) {
            silentSinceNs = -1;
            return;
        }
        if (silentSinceNs < 0) {
            silentSinceNs = now;
        }
        if (watchInFlight || now - lastWatchNs < WATCH_PERIOD_NS) {
            return;
        }
        watchInFlight = true;
        lastWatchNs = now;
        long asked = now;
        long echoesBefore = target.get().svmEchoReplies();
        reach.vmAddress().thenAccept(a -> control.execute(() -> {
            watchInFlight = false;
            if (a.answered() && silentSinceNs >= 0 && lastHeartbeatNs < asked && target.get().svmEchoReplies() == echoesBefore) {
                sm.onPrimaryServesWithoutUs(a.evidence() + " " + (runtime.nowNs() - silentSinceNs) / 1_000_000 + " ms after it fell silent",
                        runtime.nowNs());
                mirror();
            }
        }));
    }

    /** After every event: the values other lanes read. */
    void mirror() {
        term = sm.term();
        actsAsPrimary = sm.role() == FailoverStateMachine.Role.PRIMARY;
        identity.update(actsAsPrimary ? "primary" : "secondary", term);
    }

    private void onTransition(Transition t) {
        term = t.term();
        actsAsPrimary = t.to() != State.IDLE && t.to() != State.STANDBY && t.to() != State.PROBING;
        identity.update(actsAsPrimary ? "primary" : "secondary", term);
        long silentMs = (t.atNs() - lastHeartbeatNs) / 1_000_000;
        if (t.from() == t.to()) {
            events.warn("decision", "failover decision: staying put", "state", t.to(), "term", t.term(), "reason", t.reason());
        } else {
            events.info("state", "state changed", "from", t.from(), "to", t.to(), "term", t.term(), "reason", t.reason(),
                    "since_last_heartbeat_ms", silentMs);
        }
    }

    /** What the state machine asks for; every method returns at once. */
    private final class Actions implements FailoverActions {
        @Override
        public void probe() {
            boolean secondarySide = sm.role() == FailoverStateMachine.Role.SECONDARY;
            probe.probe(secondarySide).thenAccept(v -> control.execute(() -> {
                sm.onVerdict(v, runtime.nowNs());
                mirror();
            }));
        }

        @Override
        public void holdOutput() {
            events.warn("hold", "holding the VM's output until the witness decides", "term", sm.term());
            target.get().holdOutput();
        }

        @Override
        public void resumeProtected() {
            events.info("resume", "the secondary is back: held output released, comparing again", "term", sm.term());
            target.get().resumeProtected();
        }

        @Override
        public void runUnprotected() {
            target.get().runUnprotected();
            events.warn("unprotected", "serving without a secondary; held output released", "term", sm.term());
        }

        @Override
        public void reprotect() {
            target.get().reprotect();
        }

        @Override
        public void promote(long newTerm) {
            term = newTerm;
            actsAsPrimary = true;
            target.get().promote(newTerm);
        }

        @Override
        public void abandonSvm(String reason) {
            events.warn("svm_stale", "the SVM is stale (the primary served, or may have served, without us): retired, never promoted", "reason", reason);
            target.get().abandonSvm(reason);
        }

        @Override
        public void fence(String reason) {
            target.get().fence(reason);
            events.error("fenced", "fenced: this node no longer releases the VM's output", "term", sm.term(), "reason", reason);
        }
    }
}
