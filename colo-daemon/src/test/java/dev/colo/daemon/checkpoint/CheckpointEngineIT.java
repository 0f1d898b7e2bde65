package dev.colo.daemon.checkpoint;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

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
import dev.colo.testkit.Lab;
import dev.colo.testkit.LabLan;
import dev.colo.testkit.TestGuest;
import io.netty.channel.EventLoopGroup;
import io.netty.channel.MultiThreadIoEventLoopGroup;
import io.netty.channel.epoll.EpollIoHandler;
import java.net.InetSocketAddress;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicReference;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * The checkpoint engine on real QEMU through the real mutual-TLS link: a PVM serving the counter
 * under background client load checkpoints 20 times; after every commit the new SVM answers with
 * exactly the next count, and the PVM goes on counting.
 */
class CheckpointEngineIT {
    static final int CHECKPOINTS = 20;

    @BeforeAll
    static void lab() {
        Lab.require();
        Lab.sweepStaleDomains("colo-it-ckpt-");
    }

    static LinkPort port(AtomicReference<LinkSession> s) {
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

    static LinkEndpoint.Listener deliver(AtomicReference<LinkSession> session, java.util.function.Consumer<Envelope> to) {
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

    @Test
    void everyCheckpointYieldsAnSvmThatAnswersTheNextCount() throws Exception {
        String prefix = "colo-it-ckpt-" + ProcessHandle.current().pid();
        Path certs = Files.createTempDirectory("colo-ckpt-certs");
        PairCertificates.Ca ca = PairCertificates.newCa("web1", Duration.ofDays(1));
        PairCertificates.NodeFiles a = PairCertificates.issue(ca, "host-a", Duration.ofDays(1), certs.resolve("a"));
        PairCertificates.NodeFiles b = PairCertificates.issue(ca, "host-b", Duration.ofDays(1), certs.resolve("b"));
        EventLoopGroup links = new MultiThreadIoEventLoopGroup(1, EpollIoHandler.newFactory());
        List<String> hostTaps = new CopyOnWriteArrayList<>();
        Map<String, String> tapOf = new ConcurrentHashMap<>();
        List<CheckpointRecord> records = new CopyOnWriteArrayList<>();
        AtomicBoolean loadRunning = new AtomicBoolean(true);
        DomainRef pvm = null;
        PrimaryCheckpointEngine engine = null;
        SecondaryCheckpointSink sink = null;
        try (LibvirtHypervisor hv = new LibvirtHypervisor("qemu:///system"); LabLan lanA = LabLan.create("cka"); LabLan lanB = LabLan.create("ckb")) {
            String tapA = LabLan.newHostTap();
            hostTaps.add(tapA);
            String pvmXml = TestGuest.locate().domainXml(prefix + "-pvm", 128, LabLan.GUEST_CIDR, TestGuest.tapNic(tapA, LabLan.GUEST_MAC), true, null);
            pvm = hv.define(pvmXml);
            hv.start(pvm, false);
            lanA.plug(tapA);
            int count = lanA.awaitCounter(Duration.ofSeconds(90));

            // Secondary side: the sink behind the link's server end.
            AtomicReference<LinkSession> toPrimary = new AtomicReference<>();
            AtomicReference<SecondaryCheckpointSink> sinkRef = new AtomicReference<>();
            sink = new SecondaryCheckpointSink("web1", hv, seq -> {
                String tap = LabLan.newHostTap();
                hostTaps.add(tap);
                String name = prefix + "-svm-" + seq;
                tapOf.put(name, tap);
                return DomainXml.parse(pvmXml).withName(name).withUuid(LibvirtHypervisor.newUuid()).asIncomingStandby().toXml()
                        .replace("dev='" + tapA + "'", "dev='" + tap + "'").replace("dev=\"" + tapA + "\"", "dev=\"" + tap + "\"");
            }, 128L << 20, port(toPrimary), new SecondaryCheckpointSink.Listener() {
                @Override
                public void onStandbyStarted(long seq, DomainRef standby) {
                    lanB.plug(tapOf.get(standby.name()));
                }

                @Override
                public void onSvmReplaced(long epoch, DomainRef svm, DomainRef retired) {
                    if (retired != null && tapOf.containsKey(retired.name())) {
                        lanB.unplug(tapOf.get(retired.name()));
                    }
                }
            });
            sinkRef.set(sink);
            LinkEndpoint server = LinkEndpoint.server("web1", "host-b", links, new InetSocketAddress("127.0.0.1", 0), b,
                    deliver(toPrimary, m -> sinkRef.get().onLinkMessage(m)));
            sink.start();

            // Primary side: the engine behind the link's client end.
            AtomicReference<LinkSession> toSecondary = new AtomicReference<>();
            AtomicReference<PrimaryCheckpointEngine> engineRef = new AtomicReference<>();
            LinkEndpoint client = LinkEndpoint.client("web1", "host-a", links, new InetSocketAddress("127.0.0.1", server.port()), a,
                    deliver(toSecondary, m -> engineRef.get().onLinkMessage(m)));
            await().atMost(Duration.ofSeconds(10)).until(() -> toSecondary.get() != null && toPrimary.get() != null);
            CoordinatorConfig cfg = new CoordinatorConfig(5_000_000_000L, 10_000_000_000L, 5_000_000_000L, 30_000_000_000L,
                    60_000_000_000L, 0, 500_000_000L);
            engine = new PrimaryCheckpointEngine("web1", hv, pvm, port(toSecondary), Codec.LZ4, cfg, new PrimaryCheckpointEngine.Listener() {
                @Override
                public void onSnapshot(long epoch) {
                }

                @Override
                public void onRelease(long epoch) {
                }

                @Override
                public void onAbandon(long epoch, String reason) {
                }

                @Override
                public void onRecord(CheckpointRecord r) {
                    records.add(r);
                }
            });
            engineRef.set(engine);

            // Background load that does not touch the counter: the static page, over and over.
            Thread load = new Thread(() -> {
                while (loadRunning.get()) {
                    lanA.httpGet("/index.html", Duration.ofSeconds(2));
                }
            }, "client-load");
            load.start();

            engine.start();
            PrimaryCheckpointEngine e = engine;
            for (int i = 1; i <= CHECKPOINTS; i++) {
                if (i > 1) {
                    e.trigger(Trigger.ON_DEMAND, "test checkpoint " + i);
                }
                long target = i;
                await().atMost(Duration.ofSeconds(120)).until(() -> e.committedEpoch() >= target);
                int fromSvm = lanB.counter(Duration.ofSeconds(20));
                assertThat(fromSvm).as("SVM of checkpoint %d answers the next count", i).isEqualTo(count + 1);
                int fromPvm = lanA.counter(Duration.ofSeconds(20));
                assertThat(fromPvm).as("PVM after checkpoint %d", i).isEqualTo(count + 1);
                count = fromPvm;
            }
            loadRunning.set(false);
            load.join(10_000);

            List<CheckpointRecord> committed = records.stream().filter(CheckpointRecord::committed).toList();
            assertThat(committed).hasSizeGreaterThanOrEqualTo(CHECKPOINTS);
            long[] paused = committed.stream().skip(1).mapToLong(CheckpointRecord::pausedNs).sorted().toArray();
            long[] ready = committed.stream().skip(1).mapToLong(CheckpointRecord::svmReadyNs).sorted().toArray();
            double dirty = committed.stream().skip(1).mapToLong(CheckpointRecord::dirtyPages).average().orElse(0);
            double wire = committed.stream().skip(1).mapToLong(CheckpointRecord::wireBytes).average().orElse(0);
            System.out.printf("checkpoint engine on QEMU: %d checkpoints through mTLS, counter continuous; incremental ones: paused median %.1f ms "
                    + "p99 %.1f ms, SVM ready median %.1f ms, %.0f dirty pages and %.0f wire bytes on average; full first one paused %.1f ms%n",
                    committed.size(), paused[paused.length / 2] / 1e6, paused[paused.length - 1] / 1e6, ready[ready.length / 2] / 1e6,
                    dirty, wire, committed.get(0).pausedNs() / 1e6);
            // Stop the engine and the sink while the LANs still exist.
            engine.close();
            engine = null;
            sink.close();
            sink = null;
            client.close();
            server.close();
        } finally {
            loadRunning.set(false);
            if (engine != null) {
                engine.close();
            }
            if (sink != null) {
                sink.close();
            }
            links.shutdownGracefully(0, 1, TimeUnit.SECONDS).syncUninterruptibly();
            Lab.sweepStaleDomains(prefix);
            for (String t : hostTaps) {
                LabLan.deleteHostTap(t);
            }
        }
    }
}
