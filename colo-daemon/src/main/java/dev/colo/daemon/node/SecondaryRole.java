package dev.colo.daemon.node;

import com.google.protobuf.ByteString;
import dev.colo.checkpoint.engine.SecondaryCheckpointSink;
import dev.colo.checkpoint.link.proto.CheckpointAck;
import dev.colo.checkpoint.link.proto.Envelope;
import dev.colo.checkpoint.link.proto.FrameBatch;
import dev.colo.checkpoint.link.proto.PairReply;
import dev.colo.checkpoint.link.proto.PairRequest;
import dev.colo.checkpoint.link.proto.Status;
import dev.colo.daemon.config.DaemonConfig;
import dev.colo.daemon.failover.FailoverStateMachine;
import dev.colo.daemon.failover.FailoverStateMachine.State;
import dev.colo.hypervisor.DomainRef;
import dev.colo.hypervisor.HypervisorException;
import dev.colo.hypervisor.LifecycleEvent;
import dev.colo.proxy.frame.Frame;
import dev.colo.proxy.packet.Arp;
import dev.colo.proxy.path.SecondaryPath;
import dev.colo.runtime.Lane;
import io.netty.buffer.PooledByteBufAllocator;
import io.netty.buffer.Unpooled;
import java.time.Duration;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The node as secondary: the data path ({@link SecondaryPath}) feeding the running SVM, the
 * checkpoint sink with its standbys (each with a NIC socket of its own, opened and closed by the
 * role), and the takeover: the SVM serves the LAN directly, a gratuitous ARP moves the VM's MAC to
 * this host, and the rewriter keeps live connections' offsets.
 */
final class SecondaryRole implements FailoverControl.Target {
    private static final Logger log = LoggerFactory.getLogger(SecondaryRole.class);
    private static final int MAX_BUFFERED_INGRESS = 8192;
    private static final Duration QMP = Duration.ofSeconds(5);

    private final NodeContext ctx;
    private final DaemonConfig cfg;
    private final DomainShaper shaper;
    private final Lane control;
    private final Lane path;
    private final Lane work;
    /** Standby and SVM NIC sockets by domain name; opened on the start lane, closed when retired. */
    private final Map<String, VmNic> nics = new ConcurrentHashMap<>();
    // Path lane.
    private SecondaryPath secondaryPath;
    private volatile String currentSvm;
    /** The SVM running a checkpoint before it is routed (a reusable load runs it), and what it sent meanwhile. */
    private String loadingSvm;
    private final java.util.List<Frame> loadingOutput = new java.util.ArrayList<>();
    // Control lane.
    /** The sink of the current pairing; a retired one may still finish a load and call back late. */
    private volatile SecondaryCheckpointSink sink;
    /** The current pairing's disk copies and overlays; null for a VM without disks. */
    private volatile SvmDisks svmDisks;
    /** ICMP echo replies the running SVM sent (path lane writes, the failover watch reads). */
    private volatile long svmEchoReplies;
    private final dev.colo.proxy.packet.PacketView svmView = new dev.colo.proxy.packet.PacketView();

    /** Pair requests taken so far; one whose disk copies opened after a newer one came is dropped. Control lane. */
    private long pairRequests;
    private PairRequest protecting;
    private long takeoverStartNs;

    SecondaryRole(NodeContext ctx) {
        this.ctx = ctx;
        this.cfg = ctx.cfg();
        this.shaper = new DomainShaper(cfg);
        this.control = ctx.control();
        this.path = ctx.path();
        this.work = ctx.work();
    }

    void start() throws Exception {
        path.call(() -> {
            secondaryPath = new SecondaryPath(this::frameToSvm, this::frameToPeer, f -> ctx.lan().send(f), MAX_BUFFERED_INGRESS);
            return null;
        });
        sweepLeftoverStandbys();
    }

    /**
     * A secondary daemon that died leaves its SVM and standby domains behind. Stopped ones are
     * removed; running ones are only reported: one of them may be a promoted SVM serving clients.
     */
    private void sweepLeftoverStandbys() {
        String prefix = shaper.standbyPrefix(cfg.vm().domain());
        for (DomainRef d : ctx.hv().list()) {
            if (!d.name().startsWith(prefix)) {
                continue;
            }
            if (ctx.hv().state(d).isActive()) {
                ctx.events().warn("leftover_svm", "a replica domain from an earlier run is still running; colo leaves it alone", "domain",
                        d.name(), "action", "if no client is served by it: virsh destroy " + d.name() + "; virsh undefine " + d.name());
            } else {
                ctx.hv().undefine(d);
                ctx.events().info("leftover_svm_removed", "removed a stopped replica domain left by an earlier run", "domain", d.name());
            }
        }
    }

    // --- data path (path lane) ---

    void onLanFrame(Frame f) {
        secondaryPath.onClientFrame(f);
    }

    /** Client frames from the primary, tagged with their PVM segment. */
    void onFrames(FrameBatch b) {
        for (int i = 0; i < b.getFramesCount(); i++) {
            Frame f = new Frame(Unpooled.wrappedBuffer(b.getFrames(i).toByteArray()), i < b.getVnetHdrLenCount() ? b.getVnetHdrLen(i) : 0);
            secondaryPath.onIngress(b.getSegment(), b.getNextSvmOnly(), f);
        }
    }

    /**
     * A frame from a VM on one of our NIC sockets: the running SVM's counts; one that is loading a
     * checkpoint (and runs before it is routed) is kept until it is; a standby's or a retired SVM's
     * is dropped.
     */
    private void fromVm(String name, Frame f) {
        if (name.equals(loadingSvm)) {
            if (loadingOutput.size() < MAX_BUFFERED_INGRESS) {
                loadingOutput.add(f);
            } else {
                f.release();
            }
        } else if (name.equals(currentSvm)) {
            if (svmView.parse(f.ethernet()).classification() == dev.colo.proxy.packet.Classification.ICMP && svmView.icmpType() == 0) {
                svmEchoReplies++;
            }
            secondaryPath.onSvmFrame(f);
        } else {
            f.release();
        }
    }

    private void frameToSvm(Frame f) {
        String current = currentSvm;
        VmNic nic = current == null ? null : nics.get(current);
        if (nic == null) {
            f.release();
            return;
        }
        nic.send(f);
    }

    private void frameToPeer(long generation, Frame f) {
        try {
            if (!ctx.link().connected() || !ctx.link().writable()) {
                return; // the primary ages its held frame into a checkpoint
            }
            FrameBatch b = FrameBatch.newBuilder().addFrames(ByteString.copyFrom(f.data().nioBuffer())).addVnetHdrLen(f.vnetHdrLen())
                    .setSvmGeneration(generation).build();
            ctx.link().send(ctx.envelopes().builder().setFrames(b).build());
        } finally {
            f.release();
        }
    }

    // --- pairing (control lane) ---

    void onPairRequest(long primaryTerm, PairRequest req) {
        State st = ctx.failover().state();
        if (st == State.ACTIVE || st == State.FENCED) {
            refuse("this node is " + st + " (configured secondary); it cannot become the secondary now");
            return;
        }
        if (!req.getVm().equals(cfg.vm().domain())) {
            ctx.link().send(ctx.envelopes().builder().setPairReply(PairReply.newBuilder().setStatus(Status.UNKNOWN_PAIR)
                    .setDetail("this daemon protects '" + cfg.vm().domain() + "', not '" + req.getVm() + "'")).build());
            ctx.events().warn("pair_refused", "pair request refused", "reason", "unknown VM " + req.getVm());
            return;
        }
        if (req.getDisksCount() > 0 && !cfg.vm().reuseSvm()) {
            refuse("this secondary has reuse-svm = false, which cannot protect a VM with disks (QEMU's replication driver keeps the "
                    + "SVM's disk writes apart only in COLO mode); set reuse-svm = true on the secondary");
            return;
        }
        if (req.getCheckOnly()) {
            // The primary asks before it changes anything; so do we.
            String problem = req.getDisksCount() == 0 ? null : SvmDisks.check(ctx.disks(), cfg.disks().dir(), req.getVm(), req.getDisksList());
            if (problem != null) {
                refuse(problem);
            } else {
                ctx.link().send(ctx.envelopes().builder().setPairReply(PairReply.newBuilder().setStatus(Status.OK)
                        .setDetail("a pairing like this would be accepted")).build());
            }
            return;
        }
        if (sink != null) {
            ctx.events().info("repairing", "primary pairs again; retiring the old SVM and standby");
            ctx.failover().machine().onUnpaired("primary pairs again", ctx.now());
            retireSink("primary pairs again", false);
        }
        // A new pairing starts from nothing: whatever an earlier one left in the path (frames kept
        // for its next SVM, a generation a retired sink still started) belongs to other snapshots.
        path.execute(() -> {
            currentSvm = null;
            secondaryPath.onUnpaired();
        });
        String runId = Long.toString(ctx.runtime().clock().wallMillis() % 10_000_000, 36);
        long request = ++pairRequests;
        if (req.getDisksCount() == 0) {
            accept(primaryTerm, req, runId, null, request);
            return;
        }
        // The disk copies open on the work lane, after the retired pairing's SVM is gone there: a
        // resumed copy is the very file that SVM ran on.
        work.execute(() -> {
            SvmDisks disks;
            try {
                disks = SvmDisks.open(ctx.hv(), ctx.disks(), cfg.disks().dir(), req.getVm(), req.getDiskLineage(), req.getDiskResume(),
                        req.getDisksList());
            } catch (SvmDisks.Refused r) {
                control.execute(() -> refuse(r.getMessage()));
                return;
            }
            control.execute(() -> accept(primaryTerm, req, runId, disks, request));
        });
    }

    /** Takes the pairing: its sink with the disk copies (null: none), and the OK. Control lane. */
    private void accept(long primaryTerm, PairRequest req, String runId, SvmDisks disks, long request) {
        if (request != pairRequests || sink != null) {
            // A newer pair request came meanwhile; it decides.
            if (disks != null) {
                work.execute(disks::close);
            }
            return;
        }
        protecting = req;
        FailoverStateMachine machine = ctx.failover().machine();
        machine.onPairRequest(primaryTerm, req.getPromotionLeaseMs() * 1_000_000L);
        long ownMs = cfg.promotionLeaseMs();
        if (req.getPromotionLeaseMs() > 0 && req.getPromotionLeaseMs() != ownMs) {
            ctx.events().warn("lease_mismatch", "the primary's promotion lease differs from ours; the shorter one holds for this pairing",
                    "primary_lease_ms", req.getPromotionLeaseMs(), "our_lease_ms", ownMs, "lease_ms", machine.pairingLeaseNs() / 1_000_000,
                    "fix", "give both nodes the same heartbeat-interval-ms, heartbeat-timeout-ms and witness timeout-ms");
        }
        ctx.failover().mirror();
        SinkEvents listener = new SinkEvents(this);
        svmDisks = disks;
        sink = new SecondaryCheckpointSink(cfg.pair(), ctx.runtime(), ctx.hv(),
                new StandbyNics(shaper, ctx.network(), req, runId, nics, this::fromVm, disks), req.getGuestRamBytes(), ctx.link(),
                ctx.failover()::term, listener, cfg.vm().reuseSvm(), disks == null ? java.util.Map.of() : disks.copies());
        listener.owner = sink;
        sink.start();
        boolean resumed = disks != null && disks.resumed();
        ctx.link().send(ctx.envelopes().builder().setPairReply(PairReply.newBuilder().setStatus(Status.OK).setDetail("standby starting")
                .setDisksResumed(resumed)).build());
        ctx.events().info("paired", "pair request accepted; preparing the hot standby", "last_checkpoint", req.getLastCheckpointSeq(),
                "guest_ram_bytes", req.getGuestRamBytes(), "disks", req.getDisksCount(), "disk_copies", disks == null ? "none"
                        : resumed ? "resumed" : "new");
    }

    private void refuse(String why) {
        ctx.link().send(ctx.envelopes().builder().setPairReply(PairReply.newBuilder().setStatus(Status.PAIR_REFUSED).setDetail(why)).build());
        ctx.events().warn("pair_refused", "pair request refused", "reason", why);
    }

    /** Checkpoint traffic: to the sink, or a clear refusal when no pairing exists. Any lane. */
    void onCheckpointMessage(Envelope m) {
        SecondaryCheckpointSink s = sink;
        if (s != null) {
            s.onLinkMessage(m);
        } else if (m.getBodyCase() == Envelope.BodyCase.CHECKPOINT_COMMIT) {
            ctx.link().send(ctx.envelopes().builder().setCheckpointAck(CheckpointAck.newBuilder()
                    .setCheckpointSeq(m.getCheckpointCommit().getCheckpointSeq()).setStatus(Status.NOT_PAIRED)
                    .setDetail("not paired: no pair request received (the secondary daemon restarted?)")).build());
        }
    }

    /**
     * The primary ended protection (or went away saying so). The disk copies stay for a pairing that
     * resumes them when {@code keepDiskCopies}.
     */
    void onUnpair(String reason, boolean keepDiskCopies) {
        if (ctx.failover().state() == State.ACTIVE || (sink == null && ctx.failover().state() == State.IDLE)) {
            return;
        }
        ctx.events().info("unpaired", "primary ended protection; retiring the SVM and standby", "reason", reason, "disk_copies",
                svmDisks == null ? "none" : keepDiskCopies ? "kept" : "deleted");
        ctx.failover().machine().onUnpaired("primary: " + reason, ctx.now());
        ctx.failover().mirror();
        retireSink(reason, !keepDiskCopies);
    }

    private void retireSink(String why, boolean discardDiskCopies) {
        SecondaryCheckpointSink s = sink;
        SvmDisks d = svmDisks;
        sink = null;
        svmDisks = null;
        path.execute(() -> {
            currentSvm = null;
            secondaryPath.onUnpaired();
        });
        if (s != null || d != null) {
            work.execute(() -> {
                if (s != null) {
                    s.close();
                }
                if (d != null) {
                    d.close(discardDiskCopies);
                }
            });
        }
    }

    /** The primary handed over (its VM died, or a planned switchover). */
    void onFailover(dev.colo.checkpoint.link.proto.Failover f) {
        takeoverStartNs = ctx.now();
        ctx.failover().machine().onHandover((f.getPlanned() ? "planned switchover: " : "") + f.getReason(), ctx.now());
        ctx.failover().mirror();
    }

    /** Our SVM's QEMU stopped: protection is gone; say so with its own status. */
    void onLifecycle(LifecycleEvent e) {
        String name = e.domain().name();
        State st = ctx.failover().state();
        if (!name.equals(currentSvm) || (st != State.STANDBY && st != State.PROBING)) {
            return;
        }
        String why = "SVM " + name + " " + e.kind().name().toLowerCase();
        ctx.events().error("svm_lost", "the SVM stopped; telling the primary to run unprotected", "domain", name, "kind", e.kind());
        if (ctx.link().connected()) {
            ctx.link().send(ctx.envelopes().error(Status.SVM_LOST, why));
        }
        onUnpair(why, true);
    }

    /** The daemon stops: tell the primary why protection ends. */
    void onStopping() {
        State st = ctx.failover().state();
        if ((st == State.STANDBY || st == State.PROBING) && ctx.link().connected()) {
            ctx.link().send(ctx.envelopes().error(Status.SECONDARY_STOPPING, "secondary daemon stopping"));
        }
    }

    // --- failover actions (control lane) ---

    @Override
    public void holdOutput() {
        // the secondary releases nothing before it takes over
    }

    @Override
    public void resumeProtected() {
        // the secondary holds nothing back
    }

    @Override
    public void runUnprotected() {
        // a secondary never serves unprotected
    }

    @Override
    public void reprotect() {
        // re-protection is the primary's to start
    }

    /** Takeover in {@code term}: the SVM serves the LAN, a gratuitous ARP announces it, standbys go. */
    @Override
    public void promote(long term) {
        long t0 = ctx.now();
        long detectedAfterMs = (t0 - ctx.failover().lastHeartbeatNs()) / 1_000_000;
        PairRequest req = protecting;
        Runnable servePath = () -> path.execute(() -> {
            secondaryPath.promote();
            if (req != null) {
                announce(req);
            }
            int unackedConnections = secondaryPath.unacked().connections();
            int resent = secondaryPath.resendUnacked();
            int nudged = secondaryPath.nudgeClients();
            ctx.events().info("promoted", "SVM promoted: it now serves clients directly on the LAN, live TCP connections kept", "term", term,
                    "svm", currentSvm, "rewritten_connections", secondaryPath.rewriter().connections(),
                    "resent_segments", resent, "resent_connections", unackedConnections, "nudged_connections", nudged,
                    "promote_ms", (ctx.now() - t0) / 1_000_000,
                    "since_last_heartbeat_ms", detectedAfterMs);
            if (req != null) {
                path.schedule(200_000_000L, () -> announce(req));
            }
        });
        ctx.metrics().failovers.labelValues(cfg.vm().domain(), takeoverStartNs != 0 ? "handover" : "primary_lost").inc();
        SecondaryCheckpointSink s = sink;
        if (s == null) {
            servePath.run();
            return;
        }
        // The sink first: a checkpoint the SVM is taking in place finishes (or is given up before the
        // SVM stopped) before the path serves the LAN, so the SVM that serves has every frame.
        SvmDisks disks = svmDisks;
        work.execute(() -> {
            DomainRef svm;
            try {
                svm = s.takeOver();
            } catch (RuntimeException e) {
                // The checkpoint engine is stuck (a hypervisor call that does not return). Serving
                // anyway is the only chance the VM has; it serves only if its SVM runs.
                ctx.events().error("takeover_stuck", "the SVM could not be taken from its checkpoint engine; serving it anyway: check that "
                        + "the domain runs (virsh domstate) and that its clients are answered", "svm", currentSvm, "reason", e.getMessage());
                servePath.run();
                return;
            }
            if (disks != null && svm != null) {
                disks.keep(svm.name());
            }
            servePath.run();
            ctx.events().info("standby_retired", "hot standby retired; the promoted SVM is the VM now", "domain",
                    svm == null ? "none" : svm.name());
        });
    }

    private void announce(PairRequest req) {
        ctx.lan().send(Frame.of(Arp.gratuitous(PooledByteBufAllocator.DEFAULT, Arp.parseMac(req.getMac()), Arp.parseIpv4(req.getIp()))));
        ctx.events().info("garp", "gratuitous ARP sent for the VM", "mac", req.getMac(), "ip", req.getIp());
    }

    /** The SVM is stale (the primary served without us): it must never be promoted. */
    @Override
    public void abandonSvm(String reason) {
        retireSink(reason, false);
    }

    /** Another node serves the VM in a newer term: stop serving, pause our VM. */
    @Override
    public void fence(String reason) {
        path.execute(() -> secondaryPath.close());
        String svm = currentSvm;
        if (svm != null) {
            work.execute(() -> ctx.hv().lookup(svm).ifPresent(d -> {
                try {
                    ctx.hv().pause(d, QMP);
                } catch (HypervisorException e) {
                    log.atDebug().addKeyValue("reason", e.getMessage()).log("fenced SVM not paused");
                }
            }));
        }
    }

    // --- what the sink reports (SinkEvents calls these for the current sink only) ---

    /** Before the SVM of {@code seq} runs (or right after a reusable load ran it): route its traffic. */
    /**
     * @param from the sink that reports it: checked again on the path lane, because a re-pair or
     *     unpair may have retired it after {@link SinkEvents} looked and queued its own path task
     *     first (this one would then make a retired SVM current again)
     */
    void svmStarting(long seq, DomainRef svm, SecondaryCheckpointSink from) throws Exception {
        path.call(() -> {
            if (from != sink) {
                log.atInfo().addKeyValue("ckpt", seq).addKeyValue("svm", svm.name()).log("late SVM start from a retired sink ignored");
                return null;
            }
            currentSvm = svm.name();
            secondaryPath.onSvmStarting(seq);
            if (svm.name().equals(loadingSvm)) {
                loadingSvm = null;
                java.util.List<Frame> early = java.util.List.copyOf(loadingOutput);
                loadingOutput.clear();
                early.forEach(secondaryPath::onSvmFrame);
            }
            return null;
        });
    }

    void svmLoading(DomainRef svm, SecondaryCheckpointSink from) {
        path.execute(() -> {
            if (from != sink) {
                return; // retired meanwhile, as in svmStarting
            }
            loadingOutput.forEach(Frame::release);
            loadingOutput.clear();
            loadingSvm = svm.name();
        });
    }

    void svmReloading(long seq) {
        path.execute(() -> secondaryPath.onSvmReloading(seq));
    }

    /** How many frames written to the running SVM it has not read; -1 when its NIC cannot tell. */
    int svmUnread() throws Exception {
        return path.call(() -> {
            String current = currentSvm;
            VmNic nic = current == null ? null : nics.get(current);
            return nic == null ? -1 : nic.unreadFrames();
        });
    }

    void svmReloadAbandoned() {
        path.execute(() -> secondaryPath.onSvmReloadAbandoned());
    }

    void checkpointDropped(long seq) {
        path.execute(() -> {
            loadingSvm = null;
            loadingOutput.forEach(Frame::release);
            loadingOutput.clear();
            secondaryPath.onSvmReloadAbandoned();
            secondaryPath.onCheckpointDropped(seq);
        });
    }

    void svmReplaced(long seq) {
        control.execute(() -> {
            if (ctx.failover().state() == State.IDLE) {
                ctx.failover().machine().onPaired(seq, ctx.now());
                ctx.failover().mirror();
            }
            ctx.metrics().checkpointSeq.labelValues(cfg.vm().domain()).set(seq);
        });
    }

    SecondaryCheckpointSink sink() {
        return sink;
    }

    // --- status ---

    String currentSvm() {
        return currentSvm;
    }

    @Override
    public long svmEchoReplies() {
        return svmEchoReplies;
    }

    /** The current pairing's disk copies (null: none). */
    SvmDisks disks() {
        return svmDisks;
    }

    int buffered() throws Exception {
        return path.call(() -> secondaryPath.buffered());
    }

    SecondaryPath.State pathState() throws Exception {
        return path.call(() -> secondaryPath.state());
    }

    void close() {
        SecondaryCheckpointSink s = sink;
        sink = null;
        if (s != null) {
            s.close();
        }
        SvmDisks d = svmDisks;
        svmDisks = null;
        if (d != null) {
            d.close();
        }
        try {
            path.call(() -> {
                secondaryPath.close();
                return null;
            });
        } catch (Exception e) {
            // the path lane is gone
        }
        nics.values().forEach(VmNic::close);
        nics.clear();
    }
}
