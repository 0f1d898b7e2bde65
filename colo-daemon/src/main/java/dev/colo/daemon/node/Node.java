package dev.colo.daemon.node;

import dev.colo.checkpoint.coordinator.CheckpointRecord;
import dev.colo.checkpoint.link.proto.CheckpointAck;
import dev.colo.checkpoint.link.proto.Envelope;
import dev.colo.checkpoint.link.proto.Failover;
import dev.colo.checkpoint.link.proto.Fence;
import dev.colo.checkpoint.link.proto.FrameBatch;
import dev.colo.checkpoint.link.proto.PairReply;
import dev.colo.checkpoint.link.proto.PairRequest;
import dev.colo.checkpoint.link.proto.Status;
import dev.colo.checkpoint.link.proto.Unpair;
import dev.colo.daemon.config.DaemonConfig;
import dev.colo.daemon.control.OperationException;
import dev.colo.daemon.failover.FailoverStateMachine.State;
import dev.colo.hypervisor.LifecycleEvent;
import dev.colo.proxy.frame.Frame;
import dev.colo.runtime.LifeCycle;
import java.util.Map;
import java.util.concurrent.CompletableFuture;

/**
 * One protected VM on this node: the composition of its parts. It wires the ports
 * ({@link NodePorts}) to the failover control, the link router and the node's role (primary or
 * secondary), and routes the peer's messages and the hypervisor's events to them. It makes no
 * decision of its own: the state machine, the roles and the pairing workflow do.
 */
public final class Node implements AutoCloseable, LinkRouter.PeerMessages {
    private final DaemonConfig cfg;
    private final NodePorts ports;
    private final NodeContext ctx;
    private final boolean configuredPrimary;
    private final LifeCycle life;
    private final FailoverControl failover;
    private final NodeStatus status;
    private final PrimaryRole primary;
    private final SecondaryRole secondary;
    private AutoCloseable lifecycle;

    public Node(DaemonConfig cfg, NodePorts ports) {
        this.cfg = cfg;
        this.ports = ports;
        this.ctx = new NodeContext(cfg, ports);
        this.configuredPrimary = cfg.node().role() == DaemonConfig.Role.PRIMARY;
        this.life = new LifeCycle("node " + cfg.node().name());
        this.failover = new FailoverControl(cfg, ports.runtime(), ports.events(), ports.metrics(), ports.reachability(), ports.link(),
                this::target);
        this.status = new NodeStatus(ctx);
        ctx.wire(failover, new Envelopes(cfg.pair(), failover), this::statusNow, status::record);
        this.primary = configuredPrimary ? new PrimaryRole(ctx) : null;
        this.secondary = configuredPrimary ? null : new SecondaryRole(ctx);
    }

    private FailoverControl.Target target() {
        return configuredPrimary ? primary : secondary;
    }

    /** Opens the LAN side, the role's NICs, the state machine and the link, in that order. */
    public void start() throws Exception {
        life.transition(LifeCycle.State.STARTING);
        ctx.lan(ports.network().openLan(this::onLanFrame));
        if (configuredPrimary) {
            primary.start();
        } else {
            secondary.start();
        }
        ports.events().info("node_started", "colo node started", "role", configuredPrimary ? "primary" : "secondary", "tap", ctx.lan().name(),
                "proxy_port", configuredPrimary ? primary.proxyPort() : "per-standby");
        ctx.control().call(() -> {
            failover.start(configuredPrimary, ctx.envelopes());
            return null;
        });
        ports.link().start(new LinkRouter(failover, ctx.control(), ctx.path(), this));
        lifecycle = ports.hypervisor().onLifecycle(e -> ctx.control().execute(life.guard(() -> onLifecycle(e))));
        life.transition(LifeCycle.State.RUNNING);
        if (configuredPrimary && cfg.vm().pairOnStart()) {
            ctx.control().execute(() -> primary.pair("pair-on-start is set in the config"));
        }
    }

    private void onLanFrame(Frame f) {
        if (!life.accepting()) {
            f.release();
        } else if (configuredPrimary) {
            primary.onLanFrame(f);
        } else {
            secondary.onLanFrame(f);
        }
    }

    private void onLifecycle(LifecycleEvent e) {
        boolean gone = e.kind() == LifecycleEvent.Kind.CRASHED || e.kind() == LifecycleEvent.Kind.STOPPED
                || e.kind() == LifecycleEvent.Kind.SHUTDOWN;
        if (!gone) {
            return;
        }
        if (configuredPrimary) {
            primary.onLifecycle(e);
        } else {
            secondary.onLifecycle(e);
        }
    }

    // --- the peer's messages (LinkRouter) ---

    @Override
    public void onLinkUp(String peerNode) {
        ports.events().info("link_up", "replication link connected", "peer", peerNode);
        if (configuredPrimary && failover.state() == State.UNPROTECTED) {
            // We served without a secondary: whatever SVM it still runs is stale. It must drop it
            // before it could ever promote it; re-protection builds a fresh one.
            ports.link().send(ctx.envelopes().builder().setUnpair(Unpair.newBuilder()
                    .setReason("the primary served unprotected; the SVM is stale").setKeepDiskCopies(primary.keepsDisks())).build());
        }
    }

    @Override
    public void onLinkDown(String reason) {
        if (!life.accepting()) {
            return;
        }
        ports.events().warn("link_down", "replication link lost", "peer", cfg.peer().name(), "reason", reason);
        if (configuredPrimary) {
            primary.onLinkDown(reason);
        }
        failover.onLinkClosed(reason);
    }

    @Override
    public void onFrames(FrameBatch batch) {
        if (configuredPrimary) {
            primary.onFrames(batch);
        } else {
            secondary.onFrames(batch);
        }
    }

    @Override
    public void onCheckpointMessage(Envelope e) {
        if (!configuredPrimary) {
            secondary.onCheckpointMessage(e);
        }
    }

    @Override
    public void onCheckpointAck(CheckpointAck ack) {
        if (configuredPrimary) {
            primary.onCheckpointAck(ack);
        }
    }

    @Override
    public void onPairRequest(long primaryTerm, PairRequest request) {
        if (configuredPrimary) {
            String why = "this node is configured as the primary (" + cfg.node().name() + "); it cannot become the secondary";
            ports.link().send(ctx.envelopes().builder().setPairReply(PairReply.newBuilder().setStatus(Status.PAIR_REFUSED).setDetail(why)).build());
            ports.events().warn("pair_refused", "pair request refused", "reason", why);
            return;
        }
        secondary.onPairRequest(primaryTerm, request);
    }

    @Override
    public void onPairReply(PairReply reply) {
        if (configuredPrimary) {
            primary.onPairReply(reply);
        }
    }

    @Override
    public void onUnpair(String reason, boolean keepDiskCopies) {
        if (configuredPrimary) {
            // The peer is a secondary saying it goes away: same as losing it, without the witness.
            primary.onSecondaryGone(reason);
        } else {
            secondary.onUnpair(reason, keepDiskCopies);
        }
    }

    @Override
    public void onFailover(Failover f) {
        if (!configuredPrimary) {
            secondary.onFailover(f);
        }
    }

    @Override
    public void onFence(Fence f) {
        if (failover.state() == State.FENCED) {
            return; // told again; nothing changes
        }
        ports.events().error("fence_received", "the peer serves the VM in a newer term and fenced us", "peer_term", f.getTerm(), "reason",
                f.getReason());
        failover.machine().onFenced(f.getTerm(), f.getReason(), ctx.now());
        failover.mirror();
    }

    private long lastFenceSentNs = Long.MIN_VALUE;

    @Override
    public void onStalePrimary(long staleTerm) {
        long now = ctx.now();
        if (now - lastFenceSentNs < 1_000_000_000L) {
            return; // once a second is enough for a peer that keeps talking
        }
        lastFenceSentNs = now;
        if (failover.actsAsPrimary() && ports.link().connected()) {
            ports.link().send(ctx.envelopes().builder().setFence(Fence.newBuilder().setStatus(Status.FENCED).setTerm(failover.term())
                    .setReason("this node serves the VM in term " + failover.term() + "; yours is " + staleTerm)).build());
        }
    }

    @Override
    public void onError(dev.colo.checkpoint.link.proto.Error error) {
        ports.events().warn("peer_error", "peer reported a problem", "status", error.getStatus(), "detail", error.getDetail());
        if (!configuredPrimary) {
            return;
        }
        switch (error.getStatus()) {
            case SECONDARY_STOPPING, SVM_LOST -> primary.onSecondaryGone(error.getStatus().name().toLowerCase() + ": " + error.getDetail());
            case FENCED -> onFence(Fence.newBuilder().setTerm(failover.term() + 1).setReason(error.getDetail()).build());
            default -> {
                // refusals of the link itself (version, pair, corrupt) end the session; the link logs them
            }
        }
    }

    // --- what the control facade asks (control lane) ---

    Map<String, Object> statusNow() {
        return status.build(primary, secondary);
    }

    boolean configuredPrimary() {
        return configuredPrimary;
    }

    NodeContext context() {
        return ctx;
    }

    PrimaryRole primary() {
        return primary;
    }

    SecondaryRole secondary() {
        return secondary;
    }

    /** Starts pairing from the primary; completes when PROTECTED. Control lane. */
    public CompletableFuture<Map<String, Object>> pairAsync() {
        if (!configuredPrimary) {
            return CompletableFuture.failedFuture(new OperationException("this node is configured as the secondary; run pair on the primary ("
                    + cfg.peer().name() + ")"));
        }
        return primary.pair("operator asked to pair");
    }

    /** Ends protection, from the primary. Control lane. */
    Map<String, Object> unpairNow() throws OperationException {
        if (!configuredPrimary) {
            throw new OperationException("run unpair on the primary (" + cfg.peer().name() + ")");
        }
        failover.machine().onUnpaired("operator unpaired", ctx.now());
        failover.mirror();
        primary.dropDisks();
        if (ports.link().connected()) {
            ports.link().send(ctx.envelopes().builder().setUnpair(Unpair.newBuilder().setReason("operator unpaired")).build());
        }
        ports.events().info("unpaired", "protection ended by the operator; the VM keeps running unprotected");
        return statusNow();
    }

    /** An on-demand checkpoint on the primary. Control lane. */
    CompletableFuture<CheckpointRecord> checkpointAsync() throws OperationException {
        if (!configuredPrimary) {
            throw new OperationException("no checkpoint possible in state " + failover.state() + " on this node; run it on the primary");
        }
        return primary.checkpoint();
    }

    /** The secondary takes over now, on the operator's word. Control lane. */
    Map<String, Object> forceTakeover() throws OperationException {
        State st = failover.state();
        if (configuredPrimary || (st != State.STANDBY && st != State.PROBING)) {
            throw new OperationException("--force works on the secondary in STANDBY or PROBING; this node is " + st);
        }
        failover.machine().onHandover("operator forced takeover", ctx.now());
        failover.mirror();
        return statusNow();
    }

    /** A planned switchover from the primary. Control lane. */
    public CompletableFuture<Map<String, Object>> switchoverAsync() throws OperationException {
        if (!configuredPrimary) {
            throw new OperationException("a planned switchover starts on the primary; this node is the secondary");
        }
        return primary.switchover();
    }

    /** Stops the node: the peer hears why, then the role, the link and the LAN close, in reverse order of start. */
    @Override
    public void close() {
        life.closeOnce(() -> {
            ports.events().info("node_stopping", "colo node stopping", "role", failover.actsAsPrimary() ? "primary" : "secondary");
            try {
                ctx.control().call(() -> {
                    if (failover.machine() != null) {
                        if (configuredPrimary && failover.actsAsPrimary() && ports.link().connected()) {
                            ports.link().send(ctx.envelopes().builder().setUnpair(Unpair.newBuilder().setReason("primary daemon stopping")).build());
                        } else if (!configuredPrimary) {
                            secondary.onStopping();
                        }
                    }
                    failover.stop();
                    return null;
                });
            } catch (Exception e) {
                // the control lane is gone; nothing to tell the peer
            }
            quietly(lifecycle);
            if (configuredPrimary) {
                primary.close();
            } else {
                secondary.close();
            }
            ports.link().close();
            if (ctx.lan() != null) {
                ctx.lan().close();
            }
        });
    }

    private static void quietly(AutoCloseable c) {
        if (c != null) {
            try {
                c.close();
            } catch (Exception e) {
                // best effort while stopping
            }
        }
    }
}
