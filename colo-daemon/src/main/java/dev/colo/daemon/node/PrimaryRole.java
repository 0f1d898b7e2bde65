package dev.colo.daemon.node;

import com.google.protobuf.ByteString;
import dev.colo.checkpoint.coordinator.CheckpointRecord;
import dev.colo.checkpoint.coordinator.CoordinatorConfig;
import dev.colo.checkpoint.coordinator.Trigger;
import dev.colo.checkpoint.disk.DiskRelay;
import dev.colo.checkpoint.engine.DiskEpochs;
import dev.colo.checkpoint.engine.PrimaryCheckpointEngine;
import dev.colo.checkpoint.link.proto.CheckpointAck;
import dev.colo.checkpoint.link.proto.DiskWrites;
import dev.colo.checkpoint.link.proto.Failover;
import dev.colo.checkpoint.link.proto.FrameBatch;
import dev.colo.checkpoint.link.proto.PairRequest;
import dev.colo.checkpoint.link.proto.Status;
import dev.colo.checkpoint.ship.Codec;
import dev.colo.daemon.config.DaemonConfig;
import dev.colo.daemon.control.OperationException;
import dev.colo.daemon.failover.FailoverStateMachine.State;
import dev.colo.hypervisor.DomainRef;
import dev.colo.hypervisor.HypervisorException;
import dev.colo.hypervisor.LifecycleEvent;
import dev.colo.proxy.compare.CheckpointRequest;
import dev.colo.proxy.compare.CompareConfig;
import dev.colo.proxy.compare.CompareStats;
import dev.colo.proxy.compare.Reason;
import dev.colo.proxy.frame.Frame;
import dev.colo.proxy.path.PrimaryPath;
import dev.colo.runtime.Lane;
import io.netty.buffer.Unpooled;
import java.time.Duration;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.atomic.AtomicLong;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The node as primary: the data path ({@link PrimaryPath}) and the PVM's NIC on the path lane,
 * the checkpoint engine and the pairing workflow on the control lane, and the planned switchover
 * (a last checkpoint that leaves the PVM paused, then the handover).
 */
final class PrimaryRole implements FailoverControl.Target {
    private static final Logger log = LoggerFactory.getLogger(PrimaryRole.class);
    private static final Duration QMP = Duration.ofSeconds(5);
    private static final long DRAIN_NS = 3_000_000L;

    private final NodeContext ctx;
    private final DaemonConfig cfg;
    private final Lane control;
    private final Lane path;
    private final Lane work;
    private final PairingWorkflow pairing;
    private final AtomicLong droppedToPeer = new AtomicLong();
    // Path lane.
    private PrimaryPath primaryPath;
    private VmNic pvmNic;
    // Control lane.
    private PrimaryCheckpointEngine engine;
    /**
     * The disks of the pairing the engine protects (null without disks); closed with the engine,
     * or kept logging after protection was lost. Volatile: the pairing reads and discards it from
     * the work lane while no engine runs.
     */
    private volatile PvmDisks pvmDisks;
    private DomainRef pvm;
    private long lastSeq;
    private CompletableFuture<CheckpointRecord> nextRecord;
    private final PlannedSwitchover switchover;
    private volatile boolean restartingPvm;

    PrimaryRole(NodeContext ctx) {
        this.ctx = ctx;
        this.switchover = new PlannedSwitchover(ctx);
        this.cfg = ctx.cfg();
        this.control = ctx.control();
        this.path = ctx.path();
        this.work = ctx.work();
        this.pairing = new PairingWorkflow(cfg, ctx.runtime(), ctx.hv(), ctx.events(), ctx.failover(), ctx.link(), ctx.envelopes(),
                new DomainShaper(cfg), new PairingWorkflow.Host() {
                    @Override
                    public boolean pvmNicConnected() {
                        return pvmNic != null && pvmNic.connected();
                    }

                    @Override
                    public void startEngine(DomainRef ready, PairRequest req, PvmDisks disks) {
                        PrimaryRole.this.startEngine(ready, req, disks);
                    }

                    @Override
                    public DiskRelay.Link diskLink() {
                        return new RelayLink();
                    }

                    @Override
                    public PvmDisks retainedDisks() {
                        return pvmDisks;
                    }

                    @Override
                    public void discardRetainedDisks() {
                        PvmDisks d;
                        synchronized (PrimaryRole.this) {
                            d = pvmDisks;
                            pvmDisks = null;
                        }
                        if (d != null) {
                            d.close();
                        }
                    }

                    @Override
                    public void restarting(boolean on) {
                        restartingPvm = on;
                    }
                }, ctx.disks());
    }

    /** Opens the PVM's NIC socket and the data path. */
    void start() throws Exception {
        path.call(() -> {
            primaryPath = new PrimaryPath(CompareConfig.defaults().withCompareTimeoutMs(cfg.vm().compareTimeoutMs())
                    .withHttpDate(cfg.vm().compareHttpDate()), f -> pvmNic.send(f),
                    f -> ctx.lan().send(f), this::frameToPeer, this::onCheckpointNeeded, () -> pvmNic == null ? -1 : pvmNic.unreadFrames());
            return null;
        });
        pvmNic = ctx.network().openVmNic(cfg.vm().domain(), cfg.vm().proxyPort(), f -> primaryPath.onPvmFrame(f, ctx.now()));
        path.every(20_000_000L, 20_000_000L, () -> {
            primaryPath.doWork(ctx.now());
            ctx.metrics().heldFrames.labelValues(cfg.vm().domain()).set(primaryPath.stats().heldNow());
            long dates = primaryPath.stats().normalizedHttpDate();
            if (dates > normalizedHttpDate) {
                ctx.metrics().normalized.labelValues(cfg.vm().domain(), "http_date").inc(dates - normalizedHttpDate);
                normalizedHttpDate = dates;
            }
        });
    }

    /** The http_date count already in the metric; path lane. */
    private long normalizedHttpDate;

    int proxyPort() {
        return pvmNic.port();
    }

    // --- data path (path lane) ---

    void onLanFrame(Frame f) {
        primaryPath.onClientFrame(f, ctx.now());
    }

    /** SVM output over the link. */
    void onFrames(FrameBatch b) {
        for (int i = 0; i < b.getFramesCount(); i++) {
            Frame f = new Frame(Unpooled.wrappedBuffer(b.getFrames(i).toByteArray()), i < b.getVnetHdrLenCount() ? b.getVnetHdrLen(i) : 0);
            primaryPath.onSecondaryFrame(b.getSvmGeneration(), f, ctx.now());
        }
    }

    private void frameToPeer(long segment, boolean nextSvmOnly, Frame f) {
        try {
            if (!ctx.link().connected() || !ctx.link().writable()) {
                // TCP retransmits it: the PVM's acknowledgement of it waits for the SVM's own.
                droppedToPeer.incrementAndGet();
                return;
            }
            FrameBatch b = FrameBatch.newBuilder().addFrames(ByteString.copyFrom(f.data().nioBuffer())).addVnetHdrLen(f.vnetHdrLen())
                    .setSegment(segment).setNextSvmOnly(nextSvmOnly).build();
            ctx.link().send(ctx.envelopes().builder().setFrames(b).build());
        } finally {
            f.release();
        }
    }

    private void onCheckpointNeeded(CheckpointRequest req) {
        ctx.metrics().divergences.labelValues(cfg.vm().domain(), req.reason().name().toLowerCase()).inc();
        control.execute(() -> {
            if (engine != null) {
                boolean ageing = req.reason() == Reason.PRIMARY_TIMEOUT || req.reason() == Reason.SECONDARY_TIMEOUT;
                engine.trigger(ageing ? Trigger.AGEING : Trigger.DIVERGENCE, req.toString());
            }
        });
    }

    // --- pairing and the engine (control lane) ---

    CompletableFuture<Map<String, Object>> pair(String why) {
        return pairing.start(why, lastSeq);
    }

    void onPairReply(dev.colo.checkpoint.link.proto.PairReply reply) {
        pairing.onPairReply(reply);
    }

    private void startEngine(DomainRef ready, PairRequest req, PvmDisks disks) {
        pvm = ready;
        if (pvmDisks != null && pvmDisks != disks) {
            PvmDisks old = pvmDisks;
            work.execute(old::close);
        }
        pvmDisks = disks;
        long from = req.getLastCheckpointSeq();
        path.execute(() -> primaryPath.startProtecting(from, ctx.now()));
        engine = new PrimaryCheckpointEngine(cfg.pair(), ctx.runtime(), ctx.hv(), ready, ctx.link(), Codec.fromWire(cfg.vm().codec()),
                coordinatorConfig(), new EngineListener(), from, ctx.failover()::term, disks == null ? DiskEpochs.NONE : disks.epochs());
        engine.start();
    }

    /** The relays' side of the link: the copy goes to the secondary, a full log asks for a checkpoint, a broken mirror ends protection. */
    private final class RelayLink implements DiskRelay.Link {
        @Override
        public boolean send(DiskWrites batch) {
            if (!ctx.link().connected()) {
                return false;
            }
            // LinkPort.send's false means "queued, but the link is behind" (writable() paces the
            // copy); only a missing link loses the batch. The secondary's count of the copy's
            // batches is the guard either way.
            ctx.link().send(ctx.envelopes().builder().setDiskWrites(batch).build());
            return true;
        }

        @Override
        public boolean writable() {
            return !ctx.link().connected() || ctx.link().writable();
        }

        @Override
        public void checkpointWanted(String disk, long heldBytes) {
            control.execute(() -> {
                if (engine != null) {
                    engine.trigger(Trigger.DISK_LOG, "disk " + disk + " has " + (heldBytes >> 20) + " MiB of writes since the last checkpoint");
                }
            });
        }

        @Override
        public void broken(String disk, String why) {
            control.execute(() -> {
                if (engine == null && pairing.current() == null) {
                    return;
                }
                ctx.events().error("disk_mirror_lost", "a disk's mirror ended: its copy on the secondary no longer follows; protection "
                        + "ends and pairing starts again with a full copy", "disk", disk, "reason", why);
                if (engine != null) {
                    ctx.failover().machine().onSecondaryLost("the mirror of disk " + disk + " ended (" + why + ")", ctx.now());
                    ctx.failover().mirror();
                } else {
                    pairing.fail("the mirror of disk " + disk + " ended (" + why + ")");
                }
            });
        }
    }

    private CoordinatorConfig coordinatorConfig() {
        long ms = 1_000_000L;
        return new CoordinatorConfig(2_000 * ms, 5_000 * ms, 2_000 * ms, 30_000 * ms, 60_000 * ms, cfg.vm().maxIntervalMs() * ms, 500 * ms);
    }

    private void stopEngine() {
        stopEngine(false);
    }

    /**
     * Stops checkpointing. The disks' mirrors stop too, unless {@code keepDisks}: then they go on
     * keeping every write for a later pairing that can resume the secondary's copies.
     */
    private void stopEngine(boolean keepDisks) {
        stopEngine(keepDisks, false);
    }

    /** @param closeDisksNow stop the mirrors on this thread (the daemon is stopping: its lanes would drop queued work) */
    private void stopEngine(boolean keepDisks, boolean closeDisksNow) {
        if (engine != null) {
            engine.close();
            engine = null;
        }
        PvmDisks d = pvmDisks;
        if (d == null) {
            return;
        }
        if (keepDisks) {
            d.keepForResume();
            return;
        }
        pvmDisks = null;
        // After the engine: nothing cuts or ships any more. QEMU's mirrors stop on the work lane.
        if (closeDisksNow) {
            d.close();
        } else {
            work.execute(d::close);
        }
    }

    /** The kept disks can never be resumed (the operator ended protection): stop their mirrors. */
    void dropDisks() {
        stopEngine(false);
    }

    /** Whether the disks are kept for a pairing that resumes the secondary's copies. */
    boolean keepsDisks() {
        return pvmDisks != null && engine == null;
    }

    /** The link to the secondary went down: a checkpoint in flight cannot complete. */
    void onLinkDown(String reason) {
        PrimaryCheckpointEngine e = engine;
        if (e != null) {
            e.onLinkDown(reason);
        }
    }

    void onCheckpointAck(CheckpointAck ack) {
        PrimaryCheckpointEngine e = engine;
        if (e != null ? ack.getCheckpointSeq() < e.firstSeq() : ack.getStatus() == Status.NOT_PAIRED) {
            // A commit of the previous pairing that waited out a link cut (TCP delivers it when the
            // cut heals) reached a secondary that had retired that pairing; its refusal says
            // nothing about the pairing now under way, whose engine sent no checkpoint yet.
            log.atInfo().addKeyValue("ckpt", ack.getCheckpointSeq()).addKeyValue("status", ack.getStatus())
                    .addKeyValue("first_ckpt_of_this_pairing", e != null ? Long.toString(e.firstSeq()) : "none sent yet")
                    .log("answer to an earlier pairing's checkpoint ignored");
            return;
        }
        if (e != null) {
            e.onAck(ack);
        }
        if (ack.getStatus() == Status.NOT_PAIRED) {
            // The secondary forgot the pairing (it restarted): protection is gone, pair again.
            control.execute(() -> ctx.failover().machine().onSecondaryLost("secondary has no pairing (" + ack.getDetail() + ")", ctx.now()));
        }
    }

    CompletableFuture<CheckpointRecord> checkpoint() throws OperationException {
        if (engine == null || ctx.failover().state() != State.PROTECTED) {
            throw new OperationException("no checkpoint possible in state " + ctx.failover().state() + " on this node");
        }
        CompletableFuture<CheckpointRecord> next = new CompletableFuture<>();
        nextRecord = next;
        engine.trigger(Trigger.ON_DEMAND, "operator asked");
        return next;
    }

    /** A planned switchover (see {@link PlannedSwitchover}). Control lane. */
    CompletableFuture<Map<String, Object>> switchover() throws OperationException {
        return switchover.begin(engine);
    }

    /** The secondary says it cannot protect any more, with its reason. */
    void onSecondaryGone(String why) {
        ctx.failover().machine().onSecondaryLost(why, ctx.now());
        ctx.failover().mirror();
    }

    // --- failover actions (control lane) ---

    @Override
    public void holdOutput() {
        path.execute(() -> primaryPath.hold());
    }

    @Override
    public void resumeProtected() {
        path.execute(() -> primaryPath.resumeProtecting());
    }

    @Override
    public void runUnprotected() {
        stopEngine(true);
        path.execute(() -> primaryPath.unprotect(ctx.now()));
        pairing.fail("the secondary went away");
    }

    @Override
    public void reprotect() {
        pair("re-protection: the secondary answers heartbeats again");
    }

    @Override
    public void promote(long term) {
        // a primary never promotes
    }

    @Override
    public void fence(String reason) {
        stopEngine();
        path.execute(() -> primaryPath.fence());
        pairing.fail("fenced: " + reason);
        DomainRef p = pvm;
        if (p != null) {
            work.execute(() -> {
                try {
                    ctx.hv().pause(p, QMP);
                } catch (HypervisorException e) {
                    log.atDebug().addKeyValue("reason", e.getMessage()).log("fenced PVM not paused");
                }
            });
        }
    }

    /** The PVM's QEMU stopped: hand the service to the secondary. Control lane. */
    void onLifecycle(LifecycleEvent e) {
        String name = e.domain().name();
        if (pvm == null || !pvm.name().equals(name) || restartingPvm) {
            return;
        }
        String why = "PVM " + name + " " + e.kind().name().toLowerCase() + (e.detail() == null ? "" : " (" + e.detail() + ")");
        ctx.events().error("pvm_lost", "the PVM stopped", "domain", name, "kind", e.kind(), "detail", e.detail());
        State before = ctx.failover().state();
        ctx.failover().machine().onLocalVmLost(why, ctx.now());
        ctx.failover().mirror();
        if (before != ctx.failover().state() && ctx.link().connected()) {
            ctx.link().send(ctx.envelopes().builder().setFailover(Failover.newBuilder().setPlanned(false).setReason(why)).build());
            ctx.events().info("handover", "asked the secondary to take over", "reason", why);
        }
    }

    // --- status ---

    DomainRef pvm() {
        return pvm;
    }

    long lastSeq() {
        return lastSeq;
    }

    CompareStats pathStats() throws Exception {
        return path.call(() -> primaryPath.stats().snapshot());
    }

    long droppedToPeer() {
        return droppedToPeer.get();
    }

    PrimaryPath.Mode pathMode() throws Exception {
        return path.call(() -> primaryPath.mode());
    }

    /** The disks of the protected pairing (null: none, or not protected yet). Control lane. */
    PvmDisks disks() {
        return pvmDisks;
    }

    /** The disk copy of a pairing in progress (null when none runs). */
    PairingWorkflow.CopyStatus diskCopy() {
        return pairing.copyProgress();
    }

    CompletableFuture<Map<String, Object>> pairingInProgress() {
        return pairing.current();
    }

    void close() {
        // The runtime drops queued lane work when it closes: QEMU's mirrors (of a pairing's copy
        // too) stop here, or they would outlive the daemon, writing into an export nobody serves.
        stopEngine(false, true);
        pairing.closeCopy();
        try {
            path.call(() -> {
                primaryPath.close();
                return null;
            });
        } catch (Exception e) {
            // the path lane is gone
        }
        if (pvmNic != null) {
            pvmNic.close();
        }
    }

    private final class EngineListener implements PrimaryCheckpointEngine.Listener {
        @Override
        public void onPausing(long seq) {
            // Every attempt's number counts, committed or not: a re-pairing after a link loss must
            // not start at a number the secondary may already hold frames or a load for.
            control.execute(() -> lastSeq = Math.max(lastSeq, seq));
            try {
                path.call(() -> {
                    primaryPath.onPausing(seq);
                    return null;
                });
                pvmNic.drain(DRAIN_NS);
            } catch (Exception e) {
                log.atWarn().addKeyValue("ckpt", seq).addKeyValue("reason", e.toString()).log("proxy did not gate client frames before the pause");
            }
        }

        @Override
        public void onSnapshot(long seq) {
            try {
                path.call(() -> {
                    primaryPath.onSnapshot(seq, ctx.now());
                    return null;
                });
            } catch (Exception e) {
                log.atWarn().addKeyValue("ckpt", seq).addKeyValue("reason", e.toString()).log("proxy did not take the snapshot's boundary");
            }
        }

        @Override
        public void onRelease(long seq) {
            path.execute(() -> primaryPath.onCheckpointCommitted(seq, ctx.now()));
            control.execute(() -> {
                ctx.metrics().checkpointSeq.labelValues(cfg.vm().domain()).set(seq);
                if (ctx.failover().state() == State.PAIRING) {
                    ctx.failover().machine().onReprotected(seq, ctx.now());
                    ctx.failover().mirror();
                    ctx.events().info("protected", "VM protected: the SVM runs from the first checkpoint", "ckpt", seq, "peer", cfg.peer().name());
                }
            });
        }

        @Override
        public void onAbandon(long seq, String reason) {
            path.execute(() -> primaryPath.onCheckpointAbandoned(seq, ctx.now()));
            ctx.events().warn("checkpoint_abandoned", "checkpoint abandoned; the current SVM stays, the next one is full", "ckpt", seq,
                    "reason", reason);
            control.execute(() -> switchover.failed(reason));
        }

        @Override
        public void onHandOver(long seq) {
            control.execute(() -> {
                stopEngine();
                path.execute(() -> primaryPath.fence());
                switchover.handedOver(seq);
            });
        }

        @Override
        public void onRecord(CheckpointRecord r) {
            ctx.events().unlogged("checkpoint", r.committed() ? "checkpoint committed" : "checkpoint aborted", "ckpt", r.seq(), "trigger",
                    r.trigger().name().toLowerCase(), "reason", r.reason(), "full", r.full(), "paused_ms", Math.round(r.pausedNs() / 1e5) / 10.0,
                    "dirty_pages", r.dirtyPages(), "wire_bytes", r.wireBytes(), "svm_ready_ms", Math.round(r.svmReadyNs() / 1e5) / 10.0,
                    "outcome", r.outcome());
            ctx.metrics().checkpoints.labelValues(cfg.vm().domain(), r.trigger().name().toLowerCase(), r.outcome()).inc();
            if (r.committed()) {
                ctx.metrics().pausedSeconds.labelValues(cfg.vm().domain()).observe(r.pausedNs() / 1e9);
                ctx.metrics().dirtyPages.labelValues(cfg.vm().domain()).inc(r.dirtyPages());
                ctx.metrics().bytesShipped.labelValues(cfg.vm().domain()).inc(r.wireBytes());
            }
            control.execute(() -> {
                lastSeq = Math.max(lastSeq, r.seq());
                ctx.recordCheckpoint(r);
                if (nextRecord != null) {
                    nextRecord.complete(r);
                    nextRecord = null;
                }
                if (r.committed() && ctx.failover().state() == State.PROTECTED) {
                    pairing.onProtected(ctx::status);
                }
            });
        }
    }
}
