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

        void runUnprotected();

        void reprotect();

        void promote(long term);

        void fence(String reason);
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
    private dev.colo.runtime.Cancellable ticker = dev.colo.runtime.Cancellable.NONE;

    FailoverControl(DaemonConfig cfg, NodeRuntime runtime, EventJournal events, DaemonMetrics metrics, WitnessProbe probe, PeerLink link,
            Supplier<Target> target) {
        this.cfg = cfg;
        this.runtime = runtime;
        this.control = runtime.lane("control");
        this.events = events;
        this.metrics = metrics;
        this.identity = runtime.identity();
        this.probe = probe;
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
        long smTimeout = primary ? timeout : 2 * timeout + 3 * cfg.witness().timeoutMs() * 1_000_000L;
        sm = new FailoverStateMachine(primary ? State.UNPROTECTED : State.IDLE, 0, smTimeout, cfg.vm().reprotectBackoffMs() * 1_000_000L,
                new Actions(), this::onTransition, now);
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

    /** Anything arrived from the peer (any lane): the next tick turns it into a heartbeat. */
    void onPeerAlive(long peerTerm) {
        lastRxTerm = peerTerm;
        lastRxNs = runtime.nowNs();
    }

    private void tick() {
        long now = runtime.nowNs();
        if (link.connected()) {
            link.send(envelopes.builder().setHeartbeat(Heartbeat.newBuilder().setSentNs(now)).build());
        }
        long rx = lastRxNs;
        if (rx > lastHeartbeatNs) {
            lastHeartbeatNs = rx;
            sm.onHeartbeat(lastRxTerm, rx);
        }
        sm.doWork(now);
        mirror();
        metrics.term.labelValues(identity.vm()).set(sm.term());
        for (State st : State.values()) {
            metrics.state.labelValues(identity.vm(), st.name()).set(st == sm.state() ? 1 : 0);
        }
        metrics.linkUp.labelValues(identity.vm()).set(link.connected() ? 1 : 0);
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
        public void fence(String reason) {
            target.get().fence(reason);
            events.error("fenced", "fenced: this node no longer releases the VM's output", "term", sm.term(), "reason", reason);
        }
    }
}
