package dev.colo.daemon.vm;

import com.google.protobuf.ByteString;
import dev.colo.checkpoint.coordinator.CheckpointRecord;
import dev.colo.checkpoint.coordinator.CoordinatorConfig;
import dev.colo.checkpoint.coordinator.Trigger;
import dev.colo.checkpoint.engine.LinkPort;
import dev.colo.checkpoint.engine.PrimaryCheckpointEngine;
import dev.colo.checkpoint.engine.SecondaryCheckpointSink;
import dev.colo.checkpoint.link.LinkEndpoint;
import dev.colo.checkpoint.link.LinkProtocol;
import dev.colo.checkpoint.link.LinkSession;
import dev.colo.checkpoint.link.PairCertificates;
import dev.colo.checkpoint.link.proto.Envelope;
import dev.colo.checkpoint.link.proto.Failover;
import dev.colo.checkpoint.link.proto.FrameBatch;
import dev.colo.checkpoint.link.proto.Heartbeat;
import dev.colo.checkpoint.link.proto.PairReply;
import dev.colo.checkpoint.link.proto.PairRequest;
import dev.colo.checkpoint.link.proto.Status;
import dev.colo.checkpoint.link.proto.Unpair;
import dev.colo.checkpoint.ship.Codec;
import dev.colo.daemon.config.DaemonConfig;
import dev.colo.daemon.control.ControlApi;
import dev.colo.daemon.control.OperationException;
import dev.colo.daemon.events.EventJournal;
import dev.colo.daemon.failover.FailoverActions;
import dev.colo.daemon.failover.FailoverStateMachine;
import dev.colo.daemon.failover.FailoverStateMachine.State;
import dev.colo.daemon.failover.FailoverStateMachine.Transition;
import dev.colo.daemon.failover.FailoverStateMachine.Verdict;
import dev.colo.daemon.host.HostNet;
import dev.colo.daemon.host.Witness;
import dev.colo.daemon.metrics.DaemonMetrics;
import dev.colo.daemon.net.TapPump;
import dev.colo.host.libvirt.DomainXml;
import dev.colo.host.libvirt.LibvirtHypervisor;
import dev.colo.host.posix.NetNamespace;
import dev.colo.host.tap.TapDevice;
import dev.colo.hypervisor.DomainRef;
import dev.colo.hypervisor.Hypervisor;
import dev.colo.hypervisor.HypervisorException;
import dev.colo.hypervisor.LifecycleEvent;
import dev.colo.proxy.compare.CheckpointRequest;
import dev.colo.proxy.compare.CompareConfig;
import dev.colo.proxy.compare.CompareStats;
import dev.colo.proxy.compare.Reason;
import dev.colo.proxy.frame.Frame;
import dev.colo.proxy.netty.VmSocketServer;
import dev.colo.proxy.packet.Arp;
import dev.colo.proxy.path.PrimaryPath;
import dev.colo.proxy.path.SecondaryPath;
import io.netty.buffer.PooledByteBufAllocator;
import io.netty.buffer.Unpooled;
import io.netty.channel.ChannelFactory;
import io.netty.channel.EventLoop;
import io.netty.channel.EventLoopGroup;
import io.netty.channel.MultiThreadIoEventLoopGroup;
import io.netty.channel.ServerChannel;
import io.netty.channel.epoll.EpollIoHandler;
import io.netty.channel.epoll.EpollServerSocketChannel;
import java.net.InetSocketAddress;
import java.time.Duration;
import java.util.ArrayDeque;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.concurrent.Callable;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * One protected VM on this node: the composition of the data path, the checkpoint engine or sink,
 * the replication link, heartbeats and the failover state machine.
 *
 * <p>Threads: the <em>control</em> thread owns the state machine and the pairing workflow; the
 * <em>path</em> event loop owns the proxy path, the VM NIC sockets and the tap; the link has its own
 * event loop; blocking libvirt calls run on the <em>work</em> thread. They talk by posting tasks,
 * never by sharing mutable state.
 */
public final class ProtectedVm implements ControlApi, AutoCloseable {
    private static final Logger log = LoggerFactory.getLogger(ProtectedVm.class);
    private static final Duration QMP = Duration.ofSeconds(5);
    private static final int MAX_BUFFERED_INGRESS = 8192;

    private final DaemonConfig cfg;
    private final Hypervisor hv;
    private final EventJournal events;
    private final DaemonMetrics metrics;
    private final String pair;
    private final String vm;
    private final boolean startsPrimary;
    private final EventLoopGroup pathGroup = new MultiThreadIoEventLoopGroup(1, EpollIoHandler.newFactory());
    private final EventLoop path = pathGroup.next();
    private final EventLoopGroup linkGroup = new MultiThreadIoEventLoopGroup(1, EpollIoHandler.newFactory());
    private final ScheduledExecutorService control = Executors.newSingleThreadScheduledExecutor(r -> thread(r, "colo-control"));
    private final ExecutorService work = Executors.newSingleThreadExecutor(r -> thread(r, "colo-work"));
    private final ExecutorService probes = Executors.newSingleThreadExecutor(r -> thread(r, "colo-witness"));
    private final AtomicLong droppedToPeer = new AtomicLong();

    // Control thread.
    private FailoverStateMachine sm;
    private PrimaryCheckpointEngine engine;
    private SecondaryCheckpointSink sink;
    private DomainRef pvm;
    private PairRequest protecting;
    private CompletableFuture<PairReply> pendingReply;
    private CompletableFuture<Map<String, Object>> pairing;
    private CompletableFuture<CheckpointRecord> nextRecord;
    private long lastHeartbeatNs;
    private long takeoverStartNs;
    private final ArrayDeque<Long> recentCheckpointsMs = new ArrayDeque<>();
    private volatile CheckpointRecord lastRecord;
    private volatile long lastRecordAtMs;
    private volatile boolean restartingPvm;
    private volatile boolean stopping;
    /** Last time anything arrived from the peer: page batches prove it alive as well as heartbeats. */
    private volatile long lastRxNs;
    private volatile long lastRxEpoch;
    private volatile boolean lastRxFromPrimary;

    // Path loop.
    private PrimaryPath primaryPath;
    private VmSocketServer pvmPort;
    private SecondaryPath secondaryPath;
    private final Map<String, VmSocketServer> svmPorts = new ConcurrentHashMap<>();
    private volatile String currentSvm;
    private TapPump pump;

    private volatile LinkSession session;
    private LinkEndpoint linkServer;
    private LinkEndpoint linkClient;
    private AutoCloseable lifecycle;

    public ProtectedVm(DaemonConfig cfg, Hypervisor hv, EventJournal events, DaemonMetrics metrics) {
        this.cfg = cfg;
        this.hv = hv;
        this.events = events;
        this.metrics = metrics;
        this.pair = cfg.pair();
        this.vm = cfg.vm().domain();
        this.startsPrimary = cfg.node().role() == DaemonConfig.Role.PRIMARY;
    }

    private static Thread thread(Runnable r, String name) {
        Thread t = new Thread(r, name);
        t.setDaemon(true);
        return t;
    }

    // ------------------------------------------------------------------ start and stop

    /** Opens the tap, the VM's NIC socket, the link and the state machine, in that order. */
    public void start() throws Exception {
        TapDevice tap = TapDevice.open(cfg.vm().tap());
        if (cfg.vm().bridge().isPresent()) {
            HostNet.attach(tap.name(), cfg.vm().bridge().get());
        } else {
            HostNet.up(tap.name());
        }
        if (startsPrimary) {
            call(path, () -> {
                primaryPath = new PrimaryPath(CompareConfig.defaults().withCompareTimeoutMs(cfg.vm().compareTimeoutMs()),
                        f -> pvmPort.send(f), f -> pump.send(f), this::frameToPeer, this::onCheckpointNeeded, 0);
                return null;
            });
            pvmPort = new VmSocketServer(vm, path, new InetSocketAddress("127.0.0.1", cfg.vm().proxyPort()),
                    f -> primaryPath.onPvmFrame(f, System.nanoTime()), vmNamespaceChannels());
            path.scheduleAtFixedRate(() -> {
                primaryPath.doWork(System.nanoTime());
                metrics.heldFrames.labelValues(vm).set(primaryPath.stats().heldNow());
            }, 20, 20, TimeUnit.MILLISECONDS);
        } else {
            call(path, () -> {
                secondaryPath = new SecondaryPath(this::frameToSvm, this::frameToPeer, f -> pump.send(f), MAX_BUFFERED_INGRESS);
                return null;
            });
        }
        pump = new TapPump(tap, path, this::onTapFrame);
        if (!startsPrimary) {
            sweepLeftoverStandbys();
        }
        events.info("node_started", "colo node started", "role", role(), "tap", tap.name(),
                "proxy_port", startsPrimary ? pvmPort.port() : "per-standby");

        long now = System.nanoTime();
        long timeout = cfg.link().heartbeatTimeoutMs() * 1_000_000L;
        // The secondary waits longer than the primary: after a link cut the primary has decided
        // (unprotected, or fenced) before the secondary asks whether anyone still serves the VM.
        long smTimeout = startsPrimary ? timeout : 2 * timeout + 3 * cfg.witness().timeoutMs() * 1_000_000L;
        call(control, () -> {
            sm = new FailoverStateMachine(startsPrimary ? State.UNPROTECTED : State.IDLE, 0, smTimeout,
                    cfg.vm().reprotectBackoffMs() * 1_000_000L, new Actions(), this::onTransition, now);
            lastHeartbeatNs = now;
            return null;
        });

        PairCertificates.NodeFiles tls = new PairCertificates.NodeFiles(cfg.link().certificate(), cfg.link().key(), cfg.link().ca());
        LinkEndpoint.Listener linkListener = new LinkListener();
        linkServer = LinkEndpoint.server(pair, cfg.node().name(), linkGroup, cfg.link().listen(), tls, linkListener);
        // One connection per pair: the node whose name sorts first dials, whatever its role.
        if (cfg.node().name().compareTo(cfg.peer().name()) < 0) {
            linkClient = LinkEndpoint.client(pair, cfg.node().name(), linkGroup, cfg.peer().link(), tls, linkListener);
        }
        lifecycle = hv.onLifecycle(this::onLifecycle);
        control.scheduleAtFixedRate(this::tick, cfg.link().heartbeatIntervalMs(), cfg.link().heartbeatIntervalMs(), TimeUnit.MILLISECONDS);
        if (startsPrimary && cfg.vm().pairOnStart()) {
            post(() -> startPairing("pair-on-start is set in the config"));
        }
    }

    /**
     * A secondary daemon that died leaves its SVM and standby domains behind. Stopped ones are
     * removed; running ones are only reported: one of them may be a promoted SVM serving clients.
     */
    private void sweepLeftoverStandbys() {
        String prefix = vm + "-colo-svm-";
        for (DomainRef d : hv.list()) {
            if (!d.name().startsWith(prefix)) {
                continue;
            }
            if (hv.state(d).isActive()) {
                events.warn("leftover_svm", "a replica domain from an earlier run is still running; colo leaves it alone",
                        "domain", d.name(), "action", "if no client is served by it: virsh destroy " + d.name() + "; virsh undefine "
                                + d.name());
            } else {
                hv.undefine(d);
                events.info("leftover_svm_removed", "removed a stopped replica domain left by an earlier run", "domain", d.name());
            }
        }
    }

    /** The daemon's NIC sockets must be where QEMU runs, which may be another network namespace. */
    private ChannelFactory<? extends ServerChannel> vmNamespaceChannels() {
        if (cfg.libvirt().vmNetns().isEmpty()) {
            return EpollServerSocketChannel::new;
        }
        String ns = cfg.libvirt().vmNetns().get().toString();
        return () -> {
            try {
                return NetNamespace.callIn(ns, EpollServerSocketChannel::new);
            } catch (Exception e) {
                throw new IllegalStateException("cannot open a socket in network namespace " + ns + ": " + e.getMessage(), e);
            }
        };
    }

    /** Runs {@code r} on the control thread; after stop began, late events are dropped. */
    private void post(Runnable r) {
        try {
            control.execute(r);
        } catch (java.util.concurrent.RejectedExecutionException e) {
            if (!stopping) {
                throw e;
            }
        }
    }

    private static <T> T call(ExecutorService on, Callable<T> c) throws Exception {
        try {
            return on.submit(c).get(30, TimeUnit.SECONDS);
        } catch (java.util.concurrent.ExecutionException e) {
            throw e.getCause() instanceof Exception x ? x : e;
        }
    }

    private <T> T onControl(Callable<T> c) throws Exception {
        return call(control, c);
    }

    @Override
    public void close() {
        stopping = true;
        events.info("node_stopping", "colo node stopping", "role", roleSafe());
        try {
            control.submit(() -> {
                LinkSession s = session;
                if (s != null) {
                    if (sm.role() == FailoverStateMachine.Role.PRIMARY) {
                        s.send(envelope().setUnpair(Unpair.newBuilder().setReason("primary daemon stopping")).build());
                    } else if (sm.state() == State.STANDBY || sm.state() == State.PROBING) {
                        s.send(envelope().setError(dev.colo.checkpoint.link.proto.Error.newBuilder().setStatus(Status.UNAVAILABLE)
                                .setDetail("secondary daemon stopping")).build());
                    }
                }
                if (engine != null) {
                    engine.close();
                    engine = null;
                }
                if (sink != null) {
                    sink.close();
                    sink = null;
                }
            }).get(60, TimeUnit.SECONDS);
        } catch (Exception e) {
            log.atWarn().addKeyValue("vm", vm).addKeyValue("reason", e.toString()).log("unclean stop of the protection components");
        }
        control.shutdownNow();
        quietly(lifecycle);
        quietly(linkClient);
        quietly(linkServer);
        linkGroup.shutdownGracefully(0, 1, TimeUnit.SECONDS).syncUninterruptibly();
        quietly(pvmPort);
        svmPorts.values().forEach(ProtectedVm::quietly);
        quietly(pump);
        try {
            path.submit(() -> {
                if (primaryPath != null) {
                    primaryPath.close();
                }
                if (secondaryPath != null) {
                    secondaryPath.close();
                }
            }).get(5, TimeUnit.SECONDS);
        } catch (Exception e) {
            // the loop is already gone
        }
        pathGroup.shutdownGracefully(0, 1, TimeUnit.SECONDS).syncUninterruptibly();
        work.shutdownNow();
        probes.shutdownNow();
    }

    private static void quietly(AutoCloseable c) {
        if (c == null) {
            return;
        }
        try {
            c.close();
        } catch (Exception e) {
            log.atDebug().addKeyValue("reason", e.toString()).log("close failed");
        }
    }

    // ------------------------------------------------------------------ heartbeats and the state machine

    private void tick() {
        try {
            long now = System.nanoTime();
            LinkSession s = session;
            if (s != null) {
                s.send(envelope().setHeartbeat(Heartbeat.newBuilder().setSentNs(now)).build());
            }
            long rx = lastRxNs;
            if (rx > lastHeartbeatNs) {
                lastHeartbeatNs = rx;
                sm.onHeartbeat(lastRxEpoch, lastRxFromPrimary, rx);
            }
            sm.doWork(now);
            metrics.epoch.labelValues(vm).set(sm.epoch());
            for (State st : State.values()) {
                metrics.state.labelValues(vm, st.name()).set(st == sm.state() ? 1 : 0);
            }
            metrics.linkUp.labelValues(vm).set(s == null ? 0 : 1);
        } catch (RuntimeException e) {
            log.atError().addKeyValue("vm", vm).addKeyValue("reason", e.toString()).setCause(e).log("control tick failed");
        }
    }

    private Envelope.Builder envelope() {
        return Envelope.newBuilder().setProtocolVersion(LinkProtocol.VERSION).setPair(pair).setEpoch(sm == null ? 0 : sm.epoch())
                .setRole(sm != null && sm.role() == FailoverStateMachine.Role.SECONDARY ? dev.colo.checkpoint.link.proto.Role.SECONDARY
                        : dev.colo.checkpoint.link.proto.Role.PRIMARY);
    }

    private void onTransition(Transition t) {
        long silentMs = (t.atNs() - lastHeartbeatNs) / 1_000_000;
        if (t.from() == t.to()) {
            events.warn("decision", "failover decision: staying put", "state", t.to(), "epoch", t.epoch(), "reason", t.reason());
        } else {
            events.info("state", "state changed", "from", t.from(), "to", t.to(), "epoch", t.epoch(), "reason", t.reason(),
                    "since_last_heartbeat_ms", silentMs);
        }
    }

    private String role() {
        return startsPrimary ? "primary" : "secondary";
    }

    private String roleSafe() {
        return sm == null ? role() : sm.role().name().toLowerCase();
    }

    /** What the state machine asks for; every method returns at once. */
    private final class Actions implements FailoverActions {
        @Override
        public void probe() {
            long asked = System.nanoTime();
            boolean secondarySide = sm.role() == FailoverStateMachine.Role.SECONDARY;
            probes.execute(() -> {
                Witness.Answer w = Witness.ping(cfg.witness().address(), cfg.witness().timeoutMs(), 2);
                String evidence = "witness " + w.evidence();
                boolean primaryAlive = false;
                if (secondarySide && w.answered()) {
                    // Is anyone still serving? The primary daemon on a fresh connection (the
                    // replication stream may only be stalled behind bulk data), then the VM's
                    // address itself (a partition that drops the link port also drops our probe).
                    Witness.Answer daemon = Witness.connect(cfg.peer().link(), Math.max(1000, 3 * cfg.witness().timeoutMs()));
                    evidence += "; primary daemon " + daemon.evidence();
                    primaryAlive = daemon.answered();
                    if (!primaryAlive) {
                        Witness.Answer vmAddress = Witness.ping(cfg.vm().ip(), cfg.witness().timeoutMs(), 3);
                        evidence += "; VM address " + vmAddress.evidence();
                        primaryAlive = vmAddress.answered();
                    }
                }
                String all = evidence + "; probe took " + (System.nanoTime() - asked) / 1_000_000 + " ms";
                boolean alive = primaryAlive;
                post(() -> sm.onVerdict(new Verdict(w.answered(), alive, all), System.nanoTime()));
            });
        }

        @Override
        public void holdOutput() {
            events.warn("hold", "holding the VM's output until the witness decides", "epoch", sm.epoch());
        }

        @Override
        public void runUnprotected() {
            if (engine != null) {
                engine.close();
                engine = null;
            }
            path.execute(() -> primaryPath.unprotect(System.nanoTime()));
            events.warn("unprotected", "serving without a secondary; held output released", "epoch", sm.epoch());
        }

        @Override
        public void reprotect() {
            startPairing("re-protection: the secondary answers heartbeats again");
        }

        @Override
        public void promote(long epoch) {
            takeOver(epoch);
        }

        @Override
        public void fence(String reason) {
            if (engine != null) {
                engine.close();
                engine = null;
            }
            path.execute(() -> {
                if (primaryPath != null) {
                    primaryPath.fence();
                }
            });
            DomainRef p = pvm;
            if (p != null) {
                work.execute(() -> {
                    try {
                        hv.pause(p, QMP);
                    } catch (HypervisorException e) {
                        log.atDebug().addKeyValue("vm", vm).addKeyValue("reason", e.getMessage()).log("fenced PVM not paused");
                    }
                });
            }
            events.error("fenced", "fenced: this node no longer releases the VM's output", "epoch", sm.epoch(), "reason", reason);
        }
    }

    // ------------------------------------------------------------------ the data path

    private void onTapFrame(Frame f) {
        if (primaryPath != null) {
            primaryPath.onClientFrame(f, System.nanoTime());
        } else {
            secondaryPath.onClientFrame(f);
        }
    }

    /** Client frames (primary) or SVM output (secondary) over the link, tagged with their epoch. */
    private void frameToPeer(long epoch, Frame f) {
        try {
            LinkSession s = session;
            if (s == null || !s.writable()) {
                droppedToPeer.incrementAndGet(); // TCP retransmits; lasting trouble ends in a timeout
                return;
            }
            FrameBatch b = FrameBatch.newBuilder().addFrames(ByteString.copyFrom(f.data().nioBuffer())).addVnetHdrLen(f.vnetHdrLen()).build();
            s.send(Envelope.newBuilder().setProtocolVersion(LinkProtocol.VERSION).setPair(pair).setEpoch(epoch)
                    .setRole(primaryPath != null ? dev.colo.checkpoint.link.proto.Role.PRIMARY : dev.colo.checkpoint.link.proto.Role.SECONDARY)
                    .setFrames(b).build());
        } finally {
            f.release();
        }
    }

    private void frameToSvm(Frame f) {
        String current = currentSvm;
        VmSocketServer port = current == null ? null : svmPorts.get(current);
        if (port == null) {
            f.release();
            return;
        }
        port.send(f);
    }

    private void onCheckpointNeeded(CheckpointRequest req) {
        metrics.divergences.labelValues(vm, req.reason().name().toLowerCase()).inc();
        PrimaryCheckpointEngine e = engine;
        if (e != null) {
            boolean ageing = req.reason() == Reason.PRIMARY_TIMEOUT || req.reason() == Reason.SECONDARY_TIMEOUT;
            e.trigger(ageing ? Trigger.AGEING : Trigger.DIVERGENCE, req.toString());
        }
    }

    // ------------------------------------------------------------------ the link

    private final class LinkListener implements LinkEndpoint.Listener {
        @Override
        public void onReady(LinkSession s) {
            session = s;
            events.info("link_up", "replication link connected", "peer", s.peerNode());
        }

        @Override
        public void onClosed(LinkSession s, String reason) {
            if (session == s) {
                session = null;
                events.warn("link_down", "replication link lost", "peer", cfg.peer().name(), "reason", reason);
                post(() -> {
                    if (engine != null) {
                        engine.onLinkDown(reason);
                    }
                    if (!stopping) {
                        sm.onLinkClosed(reason, System.nanoTime());
                    }
                });
            }
        }

        @Override
        public void onMessage(LinkSession s, Envelope m) {
            long now = System.nanoTime();
            lastRxEpoch = m.getEpoch();
            lastRxFromPrimary = m.getRole() == dev.colo.checkpoint.link.proto.Role.PRIMARY;
            lastRxNs = now; // the control tick turns this into a heartbeat
            switch (m.getBodyCase()) {
                case HEARTBEAT -> {
                    // liveness only, recorded above
                }
                case FRAMES -> {
                    FrameBatch b = m.getFrames();
                    for (int i = 0; i < b.getFramesCount(); i++) {
                        Frame f = new Frame(Unpooled.wrappedBuffer(b.getFrames(i).toByteArray()),
                                i < b.getVnetHdrLenCount() ? b.getVnetHdrLen(i) : 0);
                        path.execute(() -> {
                            if (primaryPath != null) {
                                primaryPath.onSecondaryFrame(m.getEpoch(), f, System.nanoTime());
                            } else {
                                secondaryPath.onIngress(m.getEpoch(), f);
                            }
                        });
                    }
                }
                case CHECKPOINT_BEGIN, PAGES, DEVICE_STATE, CHECKPOINT_COMMIT, CHECKPOINT_ABORT -> post(() -> {
                    if (sink != null) {
                        sink.onLinkMessage(m);
                    } else if (m.getBodyCase() == Envelope.BodyCase.CHECKPOINT_COMMIT) {
                        s.send(envelope().setCheckpointAck(dev.colo.checkpoint.link.proto.CheckpointAck.newBuilder()
                                .setCheckpointEpoch(m.getCheckpointCommit().getCheckpointEpoch()).setStatus(Status.UNAVAILABLE)
                                .setDetail("not paired: no pair request received")).build());
                    }
                });
                case CHECKPOINT_ACK -> post(() -> {
                    if (engine != null) {
                        engine.onLinkMessage(m);
                    }
                });
                case PAIR_REQUEST -> post(() -> onPairRequest(s, m.getPairRequest()));
                case PAIR_REPLY -> post(() -> {
                    if (pendingReply != null) {
                        pendingReply.complete(m.getPairReply());
                    }
                });
                case UNPAIR -> post(() -> onPeerUnpair(m.getUnpair().getReason()));
                case FAILOVER -> post(() -> {
                    takeoverStartNs = now;
                    sm.onHandover((m.getFailover().getPlanned() ? "planned switchover: " : "") + m.getFailover().getReason(), now);
                });
                case ERROR -> post(() -> {
                    events.warn("peer_error", "peer reported a problem", "status", m.getError().getStatus(), "detail", m.getError().getDetail());
                    if (m.getError().getStatus() == Status.UNAVAILABLE) {
                        sm.onSecondaryLost(m.getError().getDetail(), System.nanoTime());
                    }
                });
                default -> log.atDebug().addKeyValue("vm", vm).addKeyValue("body", m.getBodyCase()).log("link message ignored");
            }
        }
    }

    private LinkPort linkPort() {
        return new LinkPort() {
            @Override
            public boolean send(Envelope m) {
                LinkSession s = session;
                return s != null && s.send(m);
            }

            @Override
            public boolean writable() {
                LinkSession s = session;
                return s == null || s.writable();
            }
        };
    }

    // ------------------------------------------------------------------ pairing (primary)

    /** Starts pairing; the future completes when PROTECTED or with the failure. Control thread. */
    private CompletableFuture<Map<String, Object>> startPairing(String why) {
        if (pairing != null && !pairing.isDone()) {
            return pairing;
        }
        CompletableFuture<Map<String, Object>> done = new CompletableFuture<>();
        if (!startsPrimary) {
            done.completeExceptionally(new OperationException("this node is configured as the secondary; run pair on the primary ("
                    + cfg.peer().name() + ")"));
            return done;
        }
        if (sm.state() != State.UNPROTECTED) {
            done.completeExceptionally(new OperationException("cannot pair in state " + sm.state() + " (pair works from UNPROTECTED)"));
            return done;
        }
        if (session == null) {
            done.completeExceptionally(new OperationException("peer unreachable: the replication link to " + cfg.peer().name() + " ("
                    + cfg.peer().link().getHostString() + ":" + cfg.peer().link().getPort()
                    + ") is not connected; check that its daemon runs, the address, and the pair's certificates"));
            return done;
        }
        pairing = done;
        sm.onPairingStarted(why, System.nanoTime());
        long fromEpoch = sm.epoch();
        work.execute(() -> {
            try {
                PairRequest req = preparePvm(fromEpoch);
                CompletableFuture<PairReply> reply = new CompletableFuture<>();
                post(() -> {
                    pendingReply = reply;
                    LinkSession s = session;
                    if (s == null || !s.send(envelope().setPairRequest(req).build())) {
                        reply.completeExceptionally(new OperationException("replication link dropped while pairing"));
                    }
                });
                PairReply r = reply.get(60, TimeUnit.SECONDS);
                if (r.getStatus() != Status.OK) {
                    throw new OperationException("secondary refused: " + r.getStatus() + " " + r.getDetail());
                }
                events.info("pairing", "secondary accepted the pair; first full checkpoint next", "from_epoch", fromEpoch);
                post(() -> {
                    engine = new PrimaryCheckpointEngine(pair, hv, pvm, linkPort(), Codec.fromWire(cfg.vm().codec()), coordinatorConfig(),
                            new EngineListener(), fromEpoch);
                    engine.start();
                });
            } catch (Exception e) {
                Throwable cause = e instanceof java.util.concurrent.ExecutionException && e.getCause() != null ? e.getCause() : e;
                String why2 = cause instanceof java.util.concurrent.TimeoutException ? "no answer from the secondary in 60 s"
                        : String.valueOf(cause.getMessage());
                post(() -> {
                    events.error("pairing_failed", "pairing failed", "reason", why2);
                    sm.onPairingFailed(why2, System.nanoTime());
                    done.completeExceptionally(new OperationException(why2));
                });
            }
        });
        return done;
    }

    private CoordinatorConfig coordinatorConfig() {
        long ms = 1_000_000L;
        return new CoordinatorConfig(2_000 * ms, 5_000 * ms, 2_000 * ms, 30_000 * ms, 60_000 * ms, cfg.vm().maxIntervalMs() * ms, 500 * ms);
    }

    /**
     * Makes the domain a PVM: RAM in a shared file the daemon maps, its NIC a socket to our proxy.
     * A domain not yet in that shape is redefined and restarted once. Work thread.
     */
    private PairRequest preparePvm(long fromEpoch) throws Exception {
        DomainRef d = hv.lookup(vm).orElseThrow(() -> new OperationException("domain '" + vm + "' not found in libvirt ("
                + cfg.libvirt().uri() + "); define it first (virsh define)"));
        DomainXml current = DomainXml.parse(hv.describe(d, false));
        if (current.macAddresses().isEmpty()) {
            throw new OperationException("domain '" + vm + "' has no network interface to protect");
        }
        String mac = current.macAddresses().get(0);
        DomainXml wanted = current.withSharedFileMemory().withProxyNic(mac, "127.0.0.1", cfg.vm().proxyPort());
        wanted = withConfiguredAccelerator(wanted);
        boolean connected = call(path, () -> pvmPort.connected());
        boolean running = hv.state(d).isActive();
        if (!connected || !running || !current.hasSharedFileMemory()) {
            events.info("pvm_restart", "restarting the domain as a PVM: shared-file RAM, NIC through the colo proxy",
                    "was_running", running, "shared_ram", current.hasSharedFileMemory());
            restartingPvm = true;
            try {
                if (running) {
                    hv.destroy(d);
                }
                d = hv.define(wanted.toXml());
                hv.start(d, false);
            } finally {
                restartingPvm = false;
            }
            long deadline = System.nanoTime() + 20_000_000_000L;
            while (!call(path, () -> pvmPort.connected())) {
                if (System.nanoTime() > deadline) {
                    throw new OperationException("the PVM's NIC did not connect to the proxy on 127.0.0.1:" + cfg.vm().proxyPort()
                            + " within 20 s (is [libvirt] vm-netns right?)");
                }
                Thread.sleep(20);
            }
        }
        DomainRef ready = d;
        call(control, () -> pvm = ready);
        return PairRequest.newBuilder().setVm(vm).setDomainXml(wanted.toXml()).setGuestRamBytes(wanted.memoryBytes()).setMac(mac)
                .setIp(cfg.vm().ip()).setFromEpoch(fromEpoch).build();
    }

    private final class EngineListener implements PrimaryCheckpointEngine.Listener {
        @Override
        public void onPausing(long epoch) {
            try {
                call(path, () -> {
                    primaryPath.onCheckpointStarting(epoch);
                    return null;
                });
            } catch (Exception e) {
                log.atWarn().addKeyValue("vm", vm).addKeyValue("epoch", epoch).addKeyValue("reason", e.toString())
                        .log("proxy did not switch to the next SVM before the pause");
            }
        }

        @Override
        public void onSnapshot(long epoch) {
            path.execute(() -> primaryPath.onSnapshot(epoch, System.nanoTime()));
        }

        @Override
        public void onRelease(long epoch) {
            path.execute(() -> primaryPath.onCheckpointCommitted(epoch, System.nanoTime()));
            post(() -> {
                if (sm.state() == State.PAIRING) {
                    sm.onReprotected(epoch, System.nanoTime());
                    events.info("protected", "VM protected: the SVM runs from the first checkpoint", "epoch", epoch,
                            "peer", cfg.peer().name());
                } else {
                    sm.onEpoch(epoch);
                }
            });
        }

        @Override
        public void onAbandon(long epoch, String reason) {
            path.execute(() -> primaryPath.onCheckpointAbandoned(epoch));
            events.warn("checkpoint_abandoned", "checkpoint abandoned; the current SVM stays, the next one is full", "epoch", epoch,
                    "reason", reason);
        }

        @Override
        public void onRecord(CheckpointRecord r) {
            lastRecord = r;
            lastRecordAtMs = System.currentTimeMillis();
            events.unlogged("checkpoint", r.committed() ? "checkpoint committed" : "checkpoint aborted", "epoch", r.epoch(), "trigger",
                    r.trigger().name().toLowerCase(), "reason", r.reason(), "full", r.full(), "paused_ms",
                    Math.round(r.pausedNs() / 1e5) / 10.0, "dirty_pages", r.dirtyPages(), "wire_bytes", r.wireBytes(), "svm_ready_ms",
                    Math.round(r.svmReadyNs() / 1e5) / 10.0, "outcome", r.outcome());
            metrics.checkpoints.labelValues(vm, r.trigger().name().toLowerCase(), r.outcome()).inc();
            if (r.committed()) {
                metrics.pausedSeconds.labelValues(vm).observe(r.pausedNs() / 1e9);
                metrics.dirtyPages.labelValues(vm).inc(r.dirtyPages());
                metrics.bytesShipped.labelValues(vm).inc(r.wireBytes());
            }
            post(() -> {
                recentCheckpointsMs.addLast(System.currentTimeMillis());
                while (recentCheckpointsMs.size() > 1000) {
                    recentCheckpointsMs.removeFirst();
                }
                if (nextRecord != null) {
                    nextRecord.complete(r);
                    nextRecord = null;
                }
                if (pairing != null && !pairing.isDone() && r.committed() && sm.state() == State.PROTECTED) {
                    pairing.complete(statusNow());
                }
            });
        }
    }

    // ------------------------------------------------------------------ pairing (secondary)

    private void onPairRequest(LinkSession s, PairRequest req) {
        if (startsPrimary || sm.state() == State.ACTIVE || sm.state() == State.FENCED) {
            String why = "this node is " + sm.state() + " (configured " + role() + "); it cannot become the secondary";
            s.send(envelope().setPairReply(PairReply.newBuilder().setStatus(Status.UNAVAILABLE).setDetail(why)).build());
            events.warn("pair_refused", "pair request refused", "reason", why);
            return;
        }
        if (!req.getVm().equals(vm)) {
            String why = "this daemon protects '" + vm + "', not '" + req.getVm() + "'";
            s.send(envelope().setPairReply(PairReply.newBuilder().setStatus(Status.UNKNOWN_PAIR).setDetail(why)).build());
            events.warn("pair_refused", "pair request refused", "reason", why);
            return;
        }
        if (sink != null) {
            events.info("repairing", "primary pairs again; retiring the old SVM and standby");
            sm.onUnpaired("primary pairs again", System.nanoTime());
            sink.close();
            sink = null;
        }
        protecting = req;
        sm.onEpoch(req.getFromEpoch());
        String runId = Long.toString(System.currentTimeMillis() % 10_000_000, 36);
        sink = new SecondaryCheckpointSink(pair, hv, seq -> standbyXml(req, runId, seq), req.getGuestRamBytes(), linkPort(),
                new SecondaryCheckpointSink.Listener() {
                    @Override
                    public void onSvmStarting(long epoch, DomainRef standby) {
                        // Before cont: the new SVM's first frames must find their way, and the
                        // input buffered for its epoch waits in its socket until it runs.
                        try {
                            call(path, () -> {
                                currentSvm = standby.name();
                                secondaryPath.onSvmReplaced(epoch);
                                return null;
                            });
                        } catch (Exception e) {
                            log.atWarn().addKeyValue("vm", vm).addKeyValue("epoch", epoch).addKeyValue("reason", e.toString())
                                    .log("could not route traffic to the new SVM before it runs");
                        }
                    }

                    @Override
                    public void onSvmReplaced(long epoch, DomainRef svm, DomainRef retired) {
                        path.execute(() -> {
                            if (retired != null) {
                                quietly(svmPorts.remove(retired.name()));
                            }
                        });
                        post(() -> {
                            if (sm.state() == State.IDLE) {
                                sm.onPaired(epoch, System.nanoTime());
                            } else {
                                sm.onEpoch(epoch);
                            }
                        });
                    }
                });
        sink.start();
        s.send(envelope().setPairReply(PairReply.newBuilder().setStatus(Status.OK).setDetail("standby starting")).build());
        events.info("paired", "pair request accepted; preparing the hot standby", "from_epoch", req.getFromEpoch(),
                "guest_ram_bytes", req.getGuestRamBytes());
    }

    /** A standby's definition: the PVM's, renamed, waiting for device state, NIC to its own socket here. */
    private String standbyXml(PairRequest req, String runId, long seq) {
        String name = req.getVm() + "-colo-svm-" + runId + "-" + seq;
        VmSocketServer port;
        try {
            port = new VmSocketServer(name, path, new InetSocketAddress("127.0.0.1", 0), f -> {
                if (name.equals(currentSvm)) {
                    secondaryPath.onSvmFrame(f);
                } else {
                    f.release(); // a standby (paused) or a retired SVM
                }
            }, vmNamespaceChannels());
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new HypervisorException(HypervisorException.Kind.UNAVAILABLE, "interrupted while opening the standby's NIC socket", e);
        }
        svmPorts.put(name, port);
        DomainXml x = DomainXml.parse(req.getDomainXml()).withName(name).withUuid(LibvirtHypervisor.newUuid()).asIncomingStandby()
                .withProxyNic(req.getMac(), "127.0.0.1", port.port());
        return withConfiguredAccelerator(x).toXml();
    }

    /** [libvirt] accelerator, when set, as libvirt's domain type (tcg is type 'qemu'). */
    private DomainXml withConfiguredAccelerator(DomainXml x) {
        return cfg.libvirt().accelerator().map(a -> x.withAccelerator(a.equals("kvm") ? "kvm" : "qemu")).orElse(x);
    }

    private void onPeerUnpair(String reason) {
        if (startsPrimary) {
            // The peer is a secondary saying it goes away: same as losing it, without the witness.
            sm.onSecondaryLost(reason, System.nanoTime());
            return;
        }
        if (sm.state() == State.ACTIVE) {
            return;
        }
        events.info("unpaired", "primary ended protection; retiring the SVM and standby", "reason", reason);
        sm.onUnpaired("primary: " + reason, System.nanoTime());
        if (sink != null) {
            sink.close();
            sink = null;
        }
        path.execute(() -> currentSvm = null);
    }

    // ------------------------------------------------------------------ takeover (secondary)

    private void takeOver(long epoch) {
        long t0 = System.nanoTime();
        long detectedAfterMs = (t0 - lastHeartbeatNs) / 1_000_000;
        PairRequest req = protecting;
        path.execute(() -> {
            secondaryPath.promote();
            if (req != null) {
                announce(req);
            }
            long promotedMs = (System.nanoTime() - t0) / 1_000_000;
            events.info("promoted", "SVM promoted: it now serves clients directly on the LAN, live TCP connections kept", "epoch", epoch,
                    "svm", currentSvm, "rewritten_connections", secondaryPath.rewriter().connections(), "promote_ms", promotedMs,
                    "since_last_heartbeat_ms", detectedAfterMs);
        });
        if (req != null) {
            path.schedule(() -> announce(req), 200, TimeUnit.MILLISECONDS);
        }
        metrics.failovers.labelValues(vm, takeoverStartNs != 0 ? "handover" : "primary_lost").inc();
        SecondaryCheckpointSink s = sink;
        if (s != null) {
            work.execute(() -> {
                DomainRef svm = s.takeOver();
                events.info("standby_retired", "hot standby retired; the promoted SVM is the VM now", "domain",
                        svm == null ? "none" : svm.name());
            });
        }
    }

    private void announce(PairRequest req) {
        pump.send(Frame.of(Arp.gratuitous(PooledByteBufAllocator.DEFAULT, Arp.parseMac(req.getMac()), Arp.parseIpv4(req.getIp()))));
        events.info("garp", "gratuitous ARP sent for the VM", "mac", req.getMac(), "ip", req.getIp());
    }

    // ------------------------------------------------------------------ hypervisor events

    private void onLifecycle(LifecycleEvent e) {
        boolean gone = e.kind() == LifecycleEvent.Kind.CRASHED || e.kind() == LifecycleEvent.Kind.STOPPED
                || e.kind() == LifecycleEvent.Kind.SHUTDOWN;
        if (!gone) {
            return;
        }
        String name = e.domain().name();
        post(() -> {
            if (stopping) {
                return; // our own shutdown retires the SVM and standby
            }
            if (startsPrimary && pvm != null && pvm.name().equals(name) && !restartingPvm) {
                String why = "PVM " + name + " " + e.kind().name().toLowerCase() + (e.detail() == null ? "" : " (" + e.detail() + ")");
                events.error("pvm_lost", "the PVM stopped", "domain", name, "kind", e.kind(), "detail", e.detail());
                State before = sm.state();
                sm.onLocalVmLost(why, System.nanoTime());
                LinkSession s = session;
                if (before != sm.state() && s != null) {
                    s.send(envelope().setFailover(Failover.newBuilder().setPlanned(false).setReason(why)).build());
                    events.info("handover", "asked the secondary to take over", "reason", why);
                }
            } else if (!startsPrimary && name.equals(currentSvm) && (sm.state() == State.STANDBY || sm.state() == State.PROBING)) {
                String why = "SVM " + name + " " + e.kind().name().toLowerCase();
                events.error("svm_lost", "the SVM stopped; telling the primary to run unprotected", "domain", name, "kind", e.kind());
                LinkSession s = session;
                if (s != null) {
                    s.send(envelope().setError(dev.colo.checkpoint.link.proto.Error.newBuilder().setStatus(Status.UNAVAILABLE)
                            .setDetail(why)).build());
                }
                onPeerUnpair(why);
            }
        });
    }

    // ------------------------------------------------------------------ the control API

    @Override
    public Map<String, Object> status() throws Exception {
        return onControl(this::statusNow);
    }

    private Map<String, Object> statusNow() {
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("vm", vm);
        m.put("node", cfg.node().name());
        m.put("role", sm.role().name().toLowerCase());
        m.put("state", sm.state().name());
        m.put("epoch", sm.epoch());
        m.put("domain", startsPrimary ? (pvm == null ? vm : pvm.name()) : currentSvm);
        Map<String, Object> peer = new LinkedHashMap<>();
        peer.put("node", cfg.peer().name());
        peer.put("address", cfg.peer().link().getHostString() + ":" + cfg.peer().link().getPort());
        peer.put("link", session == null ? "down" : "up");
        peer.put("last_heartbeat_ms_ago", (System.nanoTime() - lastHeartbeatNs) / 1_000_000);
        m.put("peer", peer);
        CheckpointRecord r = lastRecord;
        if (r != null) {
            Map<String, Object> c = new LinkedHashMap<>();
            c.put("epoch", r.epoch());
            c.put("age_ms", System.currentTimeMillis() - lastRecordAtMs);
            c.put("trigger", r.trigger().name().toLowerCase());
            c.put("reason", r.reason());
            c.put("outcome", r.outcome());
            c.put("full", r.full());
            c.put("paused_ms", Math.round(r.pausedNs() / 1e5) / 10.0);
            c.put("dirty_pages", r.dirtyPages());
            c.put("wire_bytes", r.wireBytes());
            c.put("svm_ready_ms", Math.round(r.svmReadyNs() / 1e5) / 10.0);
            m.put("last_checkpoint", c);
        }
        long minuteAgo = System.currentTimeMillis() - 60_000;
        m.put("checkpoints_per_minute", recentCheckpointsMs.stream().filter(t -> t >= minuteAgo).count());
        if (startsPrimary) {
            try {
                CompareStats st = call(path, () -> primaryPath.stats().snapshot());
                m.put("held_frames", st.heldNow());
                m.put("matched_frames", st.matchedFrames());
                m.put("checkpoint_requests", st.checkpointRequestsTotal());
            } catch (Exception e) {
                m.put("held_frames", -1);
            }
        } else {
            try {
                m.put("buffered_ingress", call(path, () -> secondaryPath.buffered()));
            } catch (Exception e) {
                m.put("buffered_ingress", -1);
            }
        }
        m.put("frames_not_sent_to_peer", droppedToPeer.get());
        return m;
    }

    /** Pairs the configured domain; waits for PROTECTED or the failure. */
    @Override
    public Map<String, Object> pair(String domain, Duration timeout) throws Exception {
        checkDomain(domain);
        // The link may be between reconnect attempts (its backoff tops out at 5 s): give it that long.
        long linkDeadline = System.nanoTime() + 6_000_000_000L;
        while (session == null && System.nanoTime() < linkDeadline) {
            Thread.sleep(50);
        }
        CompletableFuture<Map<String, Object>> f = onControl(() -> startPairing("operator asked to pair"));
        return await(f, timeout);
    }

    @Override
    public Map<String, Object> unpair(String domain) throws Exception {
        checkDomain(domain);
        return onControl(() -> {
            if (!startsPrimary) {
                throw new OperationException("run unpair on the primary (" + cfg.peer().name() + ")");
            }
            if (engine != null) {
                engine.close();
                engine = null;
            }
            sm.onUnpaired("operator unpaired", System.nanoTime());
            LinkSession s = session;
            if (s != null) {
                s.send(envelope().setUnpair(Unpair.newBuilder().setReason("operator unpaired")).build());
            }
            events.info("unpaired", "protection ended by the operator; the VM keeps running unprotected");
            return statusNow();
        });
    }

    @Override
    public Map<String, Object> checkpoint(String domain, Duration timeout) throws Exception {
        checkDomain(domain);
        CompletableFuture<CheckpointRecord> f = onControl(() -> {
            if (engine == null || sm.state() != State.PROTECTED) {
                throw new OperationException("no checkpoint possible in state " + sm.state() + " on this node"
                        + (startsPrimary ? "" : "; run it on the primary"));
            }
            CompletableFuture<CheckpointRecord> next = new CompletableFuture<>();
            nextRecord = next;
            engine.trigger(Trigger.ON_DEMAND, "operator asked");
            return next;
        });
        CheckpointRecord r = await(f, timeout);
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("epoch", r.epoch());
        m.put("outcome", r.outcome());
        m.put("full", r.full());
        m.put("paused_ms", Math.round(r.pausedNs() / 1e5) / 10.0);
        m.put("dirty_pages", r.dirtyPages());
        m.put("raw_bytes", r.rawBytes());
        m.put("wire_bytes", r.wireBytes());
        m.put("device_state_bytes", r.deviceStateBytes());
        m.put("svm_ready_ms", Math.round(r.svmReadyNs() / 1e5) / 10.0);
        return m;
    }

    /**
     * {@code force} on the secondary: take over now, on the operator's word. {@code planned} on the
     * primary: pause the PVM, let the SVM catch up with the held output, hand over.
     */
    @Override
    public Map<String, Object> failover(String domain, boolean planned, boolean force) throws Exception {
        checkDomain(domain);
        if (force) {
            return onControl(() -> {
                if (startsPrimary || (sm.state() != State.STANDBY && sm.state() != State.PROBING)) {
                    throw new OperationException("--force works on the secondary in STANDBY or PROBING; this node is " + sm.state());
                }
                takeoverStartNs = System.nanoTime();
                sm.onHandover("operator forced takeover", System.nanoTime());
                return statusNow();
            });
        }
        if (!planned) {
            throw new OperationException("say --planned (on the primary: a switchover without loss) or --force (on the secondary)");
        }
        DomainRef p = onControl(() -> {
            if (!startsPrimary || sm.state() != State.PROTECTED) {
                throw new OperationException("a planned switchover starts on the primary in PROTECTED; this node is " + sm.state());
            }
            return pvm;
        });
        long t0 = System.nanoTime();
        hv.pause(p, QMP);
        long deadline = System.nanoTime() + 3_000_000_000L;
        long held;
        do {
            Thread.sleep(20);
            held = call(path, () -> primaryPath.stats().snapshot().heldNow());
        } while (held > 0 && System.nanoTime() < deadline);
        long heldLeft = held;
        return onControl(() -> {
            events.info("switchover", "planned switchover: PVM paused, handing over", "held_frames_left", heldLeft, "wait_ms",
                    (System.nanoTime() - t0) / 1_000_000);
            sm.onLocalVmLost("planned switchover", System.nanoTime());
            LinkSession s = session;
            if (s != null) {
                s.send(envelope().setFailover(Failover.newBuilder().setPlanned(true).setReason("operator asked")).build());
            }
            return statusNow();
        });
    }

    private void checkDomain(String domain) throws OperationException {
        if (domain != null && !domain.equals(vm)) {
            throw new OperationException("this daemon protects '" + vm + "'; '" + domain + "' is not configured here");
        }
    }

    private static <T> T await(CompletableFuture<T> f, Duration timeout) throws Exception {
        try {
            return f.get(timeout.toMillis(), TimeUnit.MILLISECONDS);
        } catch (java.util.concurrent.ExecutionException e) {
            throw e.getCause() instanceof Exception x ? x : e;
        } catch (java.util.concurrent.TimeoutException e) {
            throw new OperationException("no result within " + timeout.toSeconds() + " s; see 'colo events'");
        }
    }

}
