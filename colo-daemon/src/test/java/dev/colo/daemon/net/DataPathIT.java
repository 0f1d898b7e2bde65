package dev.colo.daemon.net;

import static org.assertj.core.api.Assertions.assertThat;

import dev.colo.host.posix.NetNamespace;
import dev.colo.host.tap.TapDevice;
import dev.colo.proxy.compare.CompareConfig;
import dev.colo.proxy.compare.CompareStats;
import dev.colo.proxy.frame.Frame;
import dev.colo.proxy.netty.VmSocketServer;
import dev.colo.proxy.packet.Arp;
import dev.colo.proxy.packet.FlowKey;
import dev.colo.proxy.path.PrimaryPath;
import dev.colo.proxy.path.SecondaryPath;
import dev.colo.lab.Lab;
import dev.colo.lab.LabLan;
import dev.colo.lab.TestGuest;
import io.netty.buffer.PooledByteBufAllocator;
import io.netty.channel.EventLoop;
import io.netty.channel.EventLoopGroup;
import io.netty.channel.MultiThreadIoEventLoopGroup;
import io.netty.channel.epoll.EpollIoHandler;
import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.io.OutputStream;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicReference;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * The whole data path on real QEMU, without checkpoints: a PVM and an SVM (both fresh boots of the
 * deterministic test guest) behind our primary and secondary paths, each on its own event loop as
 * if on its own host, joined by an in-memory link. Divergences are answered with an immediate
 * commit, as a checkpointer would after syncing. Then the primary's QEMU and proxy die, the
 * secondary promotes, and the client's counter and its open TCP connection carry on.
 */
class DataPathIT {
    @BeforeAll
    static void lab() {
        Lab.require();
    }

    static Process qemu(int port, Path log) throws Exception {
        TestGuest g = TestGuest.locate();
        return new ProcessBuilder("qemu-system-x86_64", "-accel", "tcg", "-m", "128", "-nodefaults", "-display", "none",
                "-monitor", "none", "-kernel", g.kernel().toString(), "-initrd", g.initrd().toString(),
                "-append", g.baseCmdline() + " colo.ip=" + LabLan.GUEST_CIDR, "-serial", "file:" + log,
                "-netdev", "socket,id=n0,connect=127.0.0.1:" + port,
                "-device", "virtio-net-pci,netdev=n0,mac=" + LabLan.GUEST_MAC)
                .redirectErrorStream(true).redirectOutput(log.resolveSibling(log.getFileName() + ".out").toFile()).start();
    }

    static void awaitReady(Path console) throws Exception {
        long deadline = System.nanoTime() + Duration.ofSeconds(120).toNanos();
        while (System.nanoTime() < deadline) {
            if (Files.exists(console) && Files.readString(console, StandardCharsets.ISO_8859_1).contains("colo-guest: ready")) {
                return;
            }
            Thread.sleep(100);
        }
        throw new AssertionError("guest never printed its ready line: " + console);
    }

    static <T> T on(EventLoop loop, java.util.concurrent.Callable<T> c) throws Exception {
        return loop.submit(c).get(10, TimeUnit.SECONDS);
    }

    /**
     * Hands a frame to a host that may have died: once host A's loop is gone, the frame is lost as
     * on a dead link (and released), instead of throwing into the SVM's NIC channel, which would
     * close the SVM's NIC and fail the test for a reason no real deployment has.
     */
    static void toDeadableHost(EventLoop loop, Frame frame, Runnable deliver) {
        try {
            loop.execute(deliver);
        } catch (java.util.concurrent.RejectedExecutionException deadHost) {
            frame.release();
        }
    }

    @SafeVarargs
    static void closeAll(AtomicReference<TapPump>... pumps) {
        for (AtomicReference<TapPump> pump : pumps) {
            if (pump.get() != null) {
                pump.get().close();
            }
        }
    }

    @Test
    void clientsSeeMatchedOutputAndSurviveTheLossOfThePrimary() throws Exception {
        Path dir = Files.createTempDirectory("colo-datapath");
        long pid = ProcessHandle.current().pid() % 10000;
        EventLoopGroup groupA = new MultiThreadIoEventLoopGroup(1, EpollIoHandler.newFactory());
        EventLoopGroup groupB = new MultiThreadIoEventLoopGroup(1, EpollIoHandler.newFactory());
        EventLoop loopA = groupA.next();
        EventLoop loopB = groupB.next();
        List<Process> vms = new ArrayList<>();
        AtomicReference<PrimaryPath> primary = new AtomicReference<>();
        AtomicReference<SecondaryPath> secondary = new AtomicReference<>();
        AtomicInteger checkpoints = new AtomicInteger();
        AtomicReference<TapPump> pumpA = new AtomicReference<>();
        AtomicReference<TapPump> pumpB = new AtomicReference<>();
        // No real checkpoints here: both guests boot alike and the test's traffic is deterministic,
        // so its output matches. What the guests say on their own (IPv6 neighbour discovery with
        // random contents) diverges on its own flows; a request for a checkpoint is only logged. The
        // compare timeout is generous so that a slow TCG SVM is not mistaken for a divergence.
        // The pumps close before the LAN goes (resources close in reverse): a tap whose bridge is
        // deleted under a reading pump reports a read error that reads like a failure of the test.
        try (LabLan lan = LabLan.create("path"); AutoCloseable pumps = () -> closeAll(pumpA, pumpB)) {
            TapDevice tapA = TapDevice.open("cpa" + pid);
            TapDevice tapB = TapDevice.open("cpb" + pid);
            lan.plug(tapA.name());
            lan.plug(tapB.name());
            AtomicReference<VmSocketServer> pvmPort = new AtomicReference<>();
            AtomicReference<VmSocketServer> svmPort = new AtomicReference<>();
            InetSocketAddress any = new InetSocketAddress("127.0.0.1", 0);

            // Host A: the primary path.
            primary.set(on(loopA, () -> new PrimaryPath(CompareConfig.defaults().withCompareTimeoutMs(5000),
                    f -> pvmPort.get().send(f), f -> pumpA.get().send(f),
                    (segment, nextOnly, f) -> loopB.execute(() -> secondary.get().onIngress(segment, nextOnly, f)),
                    req -> {
                        checkpoints.incrementAndGet();
                        System.out.println("data path: checkpoint requested: " + req);
                    }, () -> -1)));
            pvmPort.set(new VmSocketServer("pvm", loopA, any, f -> primary.get().onPvmFrame(f, System.nanoTime())));
            pumpA.set(new TapPump(tapA, loopA, f -> primary.get().onClientFrame(f, System.nanoTime())));
            loopA.scheduleAtFixedRate(() -> primary.get().doWork(System.nanoTime()), 100, 100, TimeUnit.MILLISECONDS);

            // Host B: the secondary path.
            secondary.set(on(loopB, () -> new SecondaryPath(f -> svmPort.get().send(f),
                    (generation, f) -> toDeadableHost(loopA, f, () -> primary.get().onSecondaryFrame(generation, f, System.nanoTime())),
                    f -> pumpB.get().send(f), 4096)));
            svmPort.set(new VmSocketServer("svm", loopB, any, f -> secondary.get().onSvmFrame(f)));
            pumpB.set(new TapPump(tapB, loopB, f -> secondary.get().onClientFrame(f)));

            // Both VMs count as generation 1 of one pairing: a checkpoint 1 that both already are.
            on(loopA, () -> {
                primary.get().startProtecting(0, System.nanoTime());
                primary.get().onPausing(1);
                primary.get().onSnapshot(1, System.nanoTime());
                primary.get().onCheckpointCommitted(1, System.nanoTime());
                return null;
            });
            on(loopB, () -> {
                secondary.get().onSvmStarting(1);
                return null;
            });
            vms.add(qemu(pvmPort.get().port(), dir.resolve("pvm.log")));
            vms.add(qemu(svmPort.get().port(), dir.resolve("svm.log")));

            // Both guests must be up before clients talk: frames sent while the SVM's NIC is not yet
            // connected would leave the two apart (a real SVM is a checkpoint copy instead).
            awaitReady(dir.resolve("pvm.log"));
            awaitReady(dir.resolve("svm.log"));
            int first = lan.awaitCounter(Duration.ofSeconds(120), "/cgi-bin/counter?peek");
            int second = lan.counter(Duration.ofSeconds(10));
            assertThat(second).isEqualTo(first + 1);

            Socket echo = NetNamespace.call(lan.ns().name(), () -> {
                Socket s = new Socket();
                s.connect(new InetSocketAddress(LabLan.GUEST_IP, 7), 10_000);
                s.setSoTimeout(15_000);
                return s;
            });
            OutputStream out = echo.getOutputStream();
            BufferedReader in = new BufferedReader(new InputStreamReader(echo.getInputStream(), StandardCharsets.US_ASCII));
            out.write("before failover\n".getBytes(StandardCharsets.US_ASCII));
            try {
                assertThat(in.readLine()).isEqualTo("before failover");
            } catch (java.net.SocketTimeoutException e) {
                // Once seen in a whole suite, never alone: say what each path held and dropped.
                System.out.println("data path: echo unanswered; primary " + on(loopA, () -> primary.get().stats().snapshot())
                        + "; secondary " + on(loopB, () -> secondary.get().state() + " stale_dropped=" + secondary.get().staleIngressDropped()
                                + " overflow_dropped=" + secondary.get().bufferOverflowDropped()));
                throw e;
            }
            String peek = lan.httpGet("/cgi-bin/counter?peek", Duration.ofSeconds(10));
            int third = lan.counter(Duration.ofSeconds(10));
            System.out.printf("data path: first=%d second=%d peek=%s third=%d%n", first, second, peek == null ? "-" : peek.trim(), third);
            assertThat(third).isEqualTo(first + 2);

            CompareStats stats = on(loopA, () -> primary.get().stats().snapshot());
            System.out.printf("data path: counter %d..%d and echo through the primary; matched=%d released=%d compared_bytes=%d checkpoints=%d%n",
                    first, third, stats.matchedFrames(), stats.released(), stats.comparedBytes(), checkpoints.get());
            assertThat(stats.matchedFrames()).isPositive();
            assertThat(stats.comparedBytes()).isPositive();

            // Host A dies: its QEMU and its proxy.
            long tKill = System.nanoTime();
            vms.get(0).destroyForcibly().waitFor(10, TimeUnit.SECONDS);
            pumpA.get().close();
            on(loopA, () -> {
                primary.get().close(); // what a dead host held is gone; release it so the leak detector stays meaningful
                return null;
            });
            groupA.shutdownGracefully(0, 0, TimeUnit.SECONDS).syncUninterruptibly();

            // Host B takes over: promote, announce the VM's MAC from here.
            on(loopB, () -> {
                secondary.get().promote();
                pumpB.get().send(Frame.of(Arp.gratuitous(PooledByteBufAllocator.DEFAULT, Arp.parseMac(LabLan.GUEST_MAC),
                        Arp.parseIpv4(LabLan.GUEST_IP))));
                return null;
            });
            int afterFailover = lan.counter(Duration.ofSeconds(20));
            long gapMs = (System.nanoTime() - tKill) / 1_000_000;
            assertThat(afterFailover).as("the SVM saw every request the PVM saw").isEqualTo(third + 1);
            out.write("after failover\n".getBytes(StandardCharsets.US_ASCII));
            String echoed;
            try {
                echoed = in.readLine();
            } catch (java.net.SocketTimeoutException e) {
                FlowKey echoFlow = new FlowKey(-1, 6, 0, Arp.parseIpv4(LabLan.GUEST_IP) & 0xffffffffL, 0,
                        Arp.parseIpv4(LabLan.CLIENT_IP) & 0xffffffffL, 7, echo.getLocalPort());
                System.out.println("data path: echo timed out; rewriter offset " + on(loopB, () -> secondary.get().rewriter().offset(echoFlow))
                        + "; client socket:\n" + lan.ns().exec("ss", "-tin", "dport", "= :7").out());
                throw e;
            }
            assertThat(echoed).as("the same TCP connection, now served by the SVM").isEqualTo("after failover");
            int offsets = on(loopB, () -> secondary.get().rewriter().connections());
            System.out.printf("data path: after failover counter %d, echo connection alive, %d rewritten connections, %d ms from kill to answer%n",
                    afterFailover, offsets, gapMs);
            echo.close();
            pumpB.get().close();
            svmPort.get().close();
        } finally {
            for (Process p : vms) {
                p.destroyForcibly();
                p.waitFor(10, TimeUnit.SECONDS);
            }
            on(loopB, () -> {
                if (secondary.get() != null) {
                    secondary.get().close();
                }
                return null;
            });
            if (!groupA.isShuttingDown()) {
                on(loopA, () -> {
                    if (primary.get() != null) {
                        primary.get().close();
                    }
                    return null;
                });
            }
            groupB.shutdownGracefully(0, 1, TimeUnit.SECONDS).syncUninterruptibly();
            groupA.shutdownGracefully(0, 1, TimeUnit.SECONDS).syncUninterruptibly();
        }
    }
}
