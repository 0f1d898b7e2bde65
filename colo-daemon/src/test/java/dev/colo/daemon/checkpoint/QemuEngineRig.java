package dev.colo.daemon.checkpoint;

import static org.awaitility.Awaitility.await;

import static org.assertj.core.api.Assertions.assertThat;

import com.google.protobuf.ByteString;
import dev.colo.checkpoint.coordinator.CheckpointRecord;
import dev.colo.checkpoint.coordinator.CoordinatorConfig;
import dev.colo.checkpoint.coordinator.Trigger;
import dev.colo.checkpoint.engine.LinkPort;
import dev.colo.checkpoint.engine.PrimaryCheckpointEngine;
import dev.colo.checkpoint.engine.SecondaryCheckpointSink;
import dev.colo.checkpoint.link.LinkEndpoint;
import dev.colo.checkpoint.link.LinkSession;
import dev.colo.checkpoint.link.PairCertificates;
import dev.colo.checkpoint.link.proto.Envelope;
import dev.colo.checkpoint.ship.Codec;
import dev.colo.host.libvirt.DomainXml;
import dev.colo.host.libvirt.LibvirtHypervisor;
import dev.colo.hypervisor.DomainRef;
import dev.colo.runtime.NodeIdentity;
import dev.colo.runtime.ThreadedRuntime;
import dev.colo.testkit.FaultInjectingHypervisor;
import dev.colo.lab.Lab;
import dev.colo.lab.LabLan;
import dev.colo.lab.TestGuest;
import io.netty.channel.EventLoopGroup;
import io.netty.channel.MultiThreadIoEventLoopGroup;
import io.netty.channel.epoll.EpollIoHandler;
import java.net.InetSocketAddress;
import java.nio.file.Files;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicReference;
import java.util.function.Consumer;

/**
 * A protected VM on real QEMU with the real engine and link, for the integration test and the
 * benchmark: PVM on LAN A, hot standbys on LAN B (each on its own tap, plugged as it starts), the
 * engine and sink joined by the mutual-TLS link on loopback. Optional background load on LAN A that
 * does not touch the counter. The guest's work is a counter request; the SVM is a copy of the PVM
 * when it answers the next count. Cleans up everything in {@link #close()}.
 */
final class QemuEngineRig implements EngineRig {
    static final java.nio.file.Path MONITOR_DIR = java.nio.file.Path.of("/run/colo/qmp");
    static final Duration WAIT = Duration.ofSeconds(180);
    final LibvirtHypervisor libvirt;
    final FaultInjectingHypervisor hv;
    final LabLan lanA;
    final LabLan lanB;
    final List<CheckpointRecord> records = new CopyOnWriteArrayList<>();
    final List<Long> released = new CopyOnWriteArrayList<>();
    final AtomicBoolean corruptNext = new AtomicBoolean();
    /** Each answered request of the background load, as curl timed it (seconds). */
    final List<Double> clientLatencySeconds = new CopyOnWriteArrayList<>();
    final ThreadedRuntime runtimeA = new ThreadedRuntime(new NodeIdentity("host-a", "web1", "primary"));
    final ThreadedRuntime runtimeB = new ThreadedRuntime(new NodeIdentity("host-b", "web1", "secondary"));
    private final DomainRef pvm;
    private int count;
    private final String prefix;
    private final List<String> hostTaps = new CopyOnWriteArrayList<>();
    private final Map<String, String> tapOf = new ConcurrentHashMap<>();
    private final EventLoopGroup links = new MultiThreadIoEventLoopGroup(1, EpollIoHandler.newFactory());
    private final AtomicBoolean loadRunning = new AtomicBoolean();
    private Thread load;
    private PrimaryCheckpointEngine engine;
    private SecondaryCheckpointSink sink;
    private LinkEndpoint server;
    private LinkEndpoint client;

    QemuEngineRig(String tag, int memoryMiB) throws Exception {
        this(tag, memoryMiB, true);
    }

    /** @param reuseSvm checkpoints go into the running SVM in place (the daemon's default); false: a fresh standby each */
    QemuEngineRig(String tag, int memoryMiB, boolean reuseSvm) throws Exception {
        this(tag, memoryMiB, reuseSvm, true);
    }

    /** @param directMonitor the PVM gets colo's direct QMP monitor, as the daemon's PVMs do (false: every QMP command through libvirtd) */
    QemuEngineRig(String tag, int memoryMiB, boolean reuseSvm, boolean directMonitor) throws Exception {
        prefix = "colo-it-" + tag + "-" + ProcessHandle.current().pid();
        Lab.sweepStaleDomains("colo-it-" + tag + "-");
        libvirt = new LibvirtHypervisor("qemu:///system");
        hv = new FaultInjectingHypervisor(libvirt);
        lanA = LabLan.create(tag + "a");
        lanB = LabLan.create(tag + "b");
        String tapA = LabLan.newHostTap();
        hostTaps.add(tapA);
        String plainXml = TestGuest.locate().domainXml(prefix + "-pvm", memoryMiB, LabLan.GUEST_CIDR, TestGuest.tapNic(tapA, LabLan.GUEST_MAC), true, null);
        String pvmXml = directMonitor ? DomainXml.parse(plainXml).withDirectMonitor(MONITOR_DIR.resolve(DomainXml.DIRECT_MONITOR_PREFIX + prefix
                + "-pvm.sock")).toXml() : plainXml;
        pvm = hv.define(pvmXml);
        hv.start(pvm, false);
        lanA.plug(tapA);

        var certs = Files.createTempDirectory("colo-rig-certs");
        PairCertificates.Ca ca = PairCertificates.newCa("web1", Duration.ofDays(1));
        var a = PairCertificates.issue(ca, "host-a", Duration.ofDays(1), certs.resolve("a"));
        var b = PairCertificates.issue(ca, "host-b", Duration.ofDays(1), certs.resolve("b"));
        AtomicReference<LinkSession> toPrimary = new AtomicReference<>();
        AtomicReference<LinkSession> toSecondary = new AtomicReference<>();
        AtomicReference<SecondaryCheckpointSink> sinkRef = new AtomicReference<>();
        AtomicReference<PrimaryCheckpointEngine> engineRef = new AtomicReference<>();
        sink = new SecondaryCheckpointSink("web1", runtimeB, hv, new SecondaryCheckpointSink.StandbyFactory() {
            @Override
            public String define(long n) {
                String tap = LabLan.newHostTap();
                hostTaps.add(tap);
                String name = prefix + "-svm-" + n;
                tapOf.put(name, tap);
                return DomainXml.parse(plainXml).withName(name).withUuid(LibvirtHypervisor.newUuid()).asIncomingStandby().toXml()
                        .replace("dev='" + tapA + "'", "dev='" + tap + "'").replace("dev=\"" + tapA + "\"", "dev=\"" + tap + "\"");
            }

            @Override
            public void retired(DomainRef d) {
                String tap = tapOf.remove(d.name());
                if (tap != null) {
                    lanB.unplug(tap);
                }
            }
        }, (long) memoryMiB << 20, port(toPrimary), () -> 0, new SecondaryCheckpointSink.Listener() {
            @Override
            public void onStandbyStarted(DomainRef standby) {
                lanB.plug(tapOf.get(standby.name()));
            }

            @Override
            public void onSvmReplaced(long seq, DomainRef svm, DomainRef retired) {
            }
        }, reuseSvm, java.util.Map.of());
        sinkRef.set(sink);
        server = LinkEndpoint.server("web1", "host-b", links, new InetSocketAddress("127.0.0.1", 0), b, deliver(toPrimary, m -> sinkRef.get().onLinkMessage(m)));
        sink.start();
        client = LinkEndpoint.client("web1", "host-a", links, new InetSocketAddress("127.0.0.1", server.port()), a,
                deliver(toSecondary, m -> {
                    if (m.getBodyCase() == Envelope.BodyCase.CHECKPOINT_ACK) {
                        engineRef.get().onAck(m.getCheckpointAck());
                    }
                }));
        await().atMost(Duration.ofSeconds(10)).until(() -> toSecondary.get() != null && toPrimary.get() != null);
        CoordinatorConfig cfg = new CoordinatorConfig(5_000_000_000L, 20_000_000_000L, 5_000_000_000L, 60_000_000_000L,
                120_000_000_000L, 0, 500_000_000L);
        LinkPort toB = port(toSecondary);
        LinkPort corrupting = new LinkPort() {
            @Override
            public boolean send(Envelope m) {
                if (m.getBodyCase() == Envelope.BodyCase.PAGES && corruptNext.getAndSet(false)) {
                    byte[] d = m.getPages().getData().toByteArray();
                    d[d.length / 2] ^= 1;
                    m = m.toBuilder().setPages(m.getPages().toBuilder().setData(ByteString.copyFrom(d))).build();
                }
                return toB.send(m);
            }

            @Override
            public boolean writable() {
                return toB.writable();
            }
        };
        engine = new PrimaryCheckpointEngine("web1", runtimeA, hv, pvm, corrupting, Codec.LZ4, cfg, new PrimaryCheckpointEngine.Listener() {
            @Override
            public void onRelease(long seq) {
                released.add(seq);
            }

            @Override
            public void onRecord(CheckpointRecord r) {
                records.add(r);
            }
        }, 0, () -> 0);
        engineRef.set(engine);
    }

    /** Waits for the PVM to serve, starts protection, waits for the first (full) checkpoint. */
    @Override
    public void start() {
        count = lanA.awaitCounter(Duration.ofSeconds(120));
        engine.start();
        awaitCommitAfter(0);
    }

    @Override
    public void guestWorks() {
        count = lanA.counter(Duration.ofSeconds(20));
    }

    @Override
    public CheckpointRecord checkpoint(Trigger trigger, String why) {
        int before = records.size();
        engine.trigger(trigger, why);
        // A 1 ms poll: a rate benchmark must not measure awaitility's default 100 ms.
        await().pollDelay(Duration.ZERO).pollInterval(Duration.ofMillis(1)).atMost(WAIT).until(() -> records.size() > before);
        return records.get(before);
    }

    @Override
    public CheckpointRecord awaitCommitAfter(long seq) {
        await().atMost(WAIT).until(() -> records.stream().anyMatch(r -> r.committed() && r.seq() > seq));
        return records.stream().filter(r -> r.committed() && r.seq() > seq).findFirst().orElseThrow();
    }

    /** The SVM answers the count after the PVM's last one, and so does the PVM. */
    @Override
    public void assertSvmIsACopyOfThePvm() {
        int fromSvm = lanB.counter(Duration.ofSeconds(20));
        assertThat(fromSvm).as("the SVM of checkpoint %d answers the next count", engine.committedSeq()).isEqualTo(count + 1);
        int fromPvm = lanA.counter(Duration.ofSeconds(20));
        assertThat(fromPvm).as("the PVM goes on counting").isEqualTo(count + 1);
        count = fromPvm;
    }

    @Override
    public List<CheckpointRecord> records() {
        return records;
    }

    @Override
    public List<Long> released() {
        return released;
    }

    @Override
    public void corruptNextPageBatch() {
        corruptNext.set(true);
    }

    @Override
    public void pvmWillNotPause(boolean on) {
        if (on) {
            hv.timeOut(pvm.name(), "stop");
        } else {
            hv.clearFaults();
        }
    }

    @Override
    public boolean pvmRunning() {
        await().atMost(Duration.ofSeconds(10)).until(() -> hv.state(pvm) == dev.colo.hypervisor.DomainState.RUNNING);
        return true;
    }

    /** Resident memory of the secondary's QEMU processes (the SVM and any standbys), in bytes. */
    long secondaryQemuRssBytes() throws java.io.IOException {
        long total = 0;
        for (String name : tapOf.keySet()) {
            java.nio.file.Path pidFile = java.nio.file.Path.of("/run/libvirt/qemu/" + name + ".pid");
            if (!Files.exists(pidFile)) {
                continue;
            }
            String pid = Files.readString(pidFile).trim();
            for (String line : Files.readAllLines(java.nio.file.Path.of("/proc/" + pid + "/status"))) {
                if (line.startsWith("VmRSS:")) {
                    total += Long.parseLong(line.replaceAll("[^0-9]", "")) * 1024;
                }
            }
        }
        return total;
    }

    /** Domains the secondary holds now (the SVM and its standbys). */
    int secondaryDomains() {
        return tapOf.size();
    }

    /** The PVM's counter as last read. */
    int count() {
        return count;
    }

    void startLoad() {
        loadRunning.set(true);
        load = new Thread(() -> {
            while (loadRunning.get()) {
                double seconds = lanA.httpGetSeconds("/index.html", Duration.ofSeconds(2));
                if (seconds >= 0) {
                    clientLatencySeconds.add(seconds);
                }
            }
        }, "client-load");
        load.start();
    }

    void stopLoad() throws InterruptedException {
        loadRunning.set(false);
        if (load != null) {
            load.join(10_000);
        }
    }

    private static LinkPort port(AtomicReference<LinkSession> s) {
        return new LinkPort() {
            @Override
            public boolean send(Envelope m) {
                LinkSession x = s.get();
                return x != null && x.send(m);
            }

            @Override
            public boolean writable() {
                LinkSession x = s.get();
                return x == null || x.writable();
            }
        };
    }

    private static LinkEndpoint.Listener deliver(AtomicReference<LinkSession> session, Consumer<Envelope> to) {
        return new LinkEndpoint.Listener() {
            @Override
            public void onReady(LinkSession s) {
                session.set(s);
            }

            @Override
            public void onMessage(LinkSession s, Envelope m) {
                to.accept(m);
            }

            @Override
            public void onClosed(LinkSession s, String reason) {
                session.compareAndSet(s, null);
            }
        };
    }

    @Override
    public void close() {
        loadRunning.set(false);
        runtimeA.close();
        runtimeB.close();
        if (engine != null) {
            engine.close();
        }
        if (sink != null) {
            sink.close();
        }
        if (client != null) {
            client.close();
        }
        if (server != null) {
            server.close();
        }
        links.shutdownGracefully(0, 1, TimeUnit.SECONDS).syncUninterruptibly();
        Lab.sweepStaleDomains(prefix);
        lanA.close();
        lanB.close();
        for (String t : hostTaps) {
            LabLan.deleteHostTap(t);
        }
        libvirt.close();
    }
}
