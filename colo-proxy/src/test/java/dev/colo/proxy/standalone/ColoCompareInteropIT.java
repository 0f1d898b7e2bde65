package dev.colo.proxy.standalone;

import static org.assertj.core.api.Assertions.assertThat;

import dev.colo.lab.Lab;
import dev.colo.lab.LabLan;
import dev.colo.host.posix.NetNamespace;
import dev.colo.host.posix.Command;
import dev.colo.lab.TestGuest;
import java.io.IOException;
import java.net.ServerSocket;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * colo compare in place of QEMU's colo-compare, between a real PVM and SVM wired with QEMU's own
 * filter-mirror, filter-redirector and filter-rewriter (topology in docs/compare.md). A test notifier
 * answers DO_CHECKPOINT with COLO_CHECKPOINT, as a checkpointer would after syncing.
 */
class ColoCompareInteropIT {
    @BeforeAll
    static void lab() {
        Lab.require();
    }

    static int freePort() throws IOException {
        try (ServerSocket s = new ServerSocket(0)) {
            return s.getLocalPort();
        }
    }

    static Process qemu(List<String> args, Path log) throws IOException {
        List<String> cmd = new ArrayList<>(List.of("qemu-system-x86_64", "-accel", "tcg", "-m", "128", "-nodefaults",
                "-display", "none", "-monitor", "none", "-kernel", TestGuest.locate().kernel().toString(),
                "-initrd", TestGuest.locate().initrd().toString(),
                "-append", TestGuest.locate().baseCmdline() + " colo.ip=" + LabLan.GUEST_CIDR,
                "-serial", "file:" + log));
        cmd.addAll(args);
        return new ProcessBuilder(cmd).redirectErrorStream(true).redirectOutput(log.resolveSibling(log.getFileName() + ".out").toFile()).start();
    }

    @Test
    void httpThroughThePrimaryIsAnsweredWithOurComparatorInTheMiddle() throws Exception {
        Path dir = Files.createTempDirectory("colo-interop");
        Endpoint any = Endpoint.parse("tcp:127.0.0.1:0,server");
        String pvmTap = LabLan.newHostTap();
        String svmTap = LabLan.newHostTap();
        List<Process> procs = new ArrayList<>();
        try (StandaloneCompare cmp = new StandaloneCompare(new CompareOptions(any, any, any, any, 1000, 100, 1024, false)).start();
                LabLan lan = LabLan.create("interop"); NetNamespace parked = NetNamespace.create("svmpark")) {
            int pri = cmp.boundPort(StandaloneCompare.Role.PRIMARY_IN);
            int sec = cmp.boundPort(StandaloneCompare.Role.SECONDARY_IN);
            int out = cmp.boundPort(StandaloneCompare.Role.OUTDEV);
            int mirror = freePort();
            String mac = LabLan.GUEST_MAC;
            procs.add(qemu(List.of(
                    "-netdev", "tap,id=hn0,ifname=" + pvmTap + ",script=no,downscript=no,vnet_hdr=off",
                    "-device", "virtio-net-pci,netdev=hn0,mac=" + mac,
                    "-chardev", "socket,id=mirror0,host=127.0.0.1,port=" + mirror + ",server=on,wait=off",
                    "-chardev", "socket,id=to_cmp_pri,host=127.0.0.1,port=" + pri + ",reconnect=1",
                    "-chardev", "socket,id=from_cmp_out,host=127.0.0.1,port=" + out + ",reconnect=1",
                    "-object", "filter-mirror,id=m0,netdev=hn0,queue=tx,outdev=mirror0",
                    // The redirector reading from the comparator must come before the one writing to it.
                    "-object", "filter-redirector,id=redire0,netdev=hn0,queue=rx,indev=from_cmp_out",
                    "-object", "filter-redirector,id=redire1,netdev=hn0,queue=rx,outdev=to_cmp_pri"), dir.resolve("pvm.log")));
            procs.add(qemu(List.of(
                    "-netdev", "tap,id=hn0,ifname=" + svmTap + ",script=no,downscript=no,vnet_hdr=off",
                    "-device", "virtio-net-pci,netdev=hn0,mac=" + mac,
                    "-chardev", "socket,id=red0,host=127.0.0.1,port=" + mirror + ",reconnect=1",
                    "-chardev", "socket,id=red1,host=127.0.0.1,port=" + sec + ",reconnect=1",
                    "-object", "filter-redirector,id=f1,netdev=hn0,queue=tx,indev=red0",
                    "-object", "filter-redirector,id=f2,netdev=hn0,queue=rx,outdev=red1",
                    "-object", "filter-rewriter,id=rew0,netdev=hn0,queue=all"), dir.resolve("svm.log")));
            Thread.sleep(300); // QEMU opens the taps at start
            lan.plug(pvmTap);
            Command.run(Duration.ofSeconds(10), "ip", "link", "set", svmTap, "netns", parked.name()).orThrow();
            parked.exec("ip", "link", "set", svmTap, "up").orThrow();

            try (FramedSocket notify = FramedSocket.tcp(cmp.boundPort(StandaloneCompare.Role.NOTIFY_DEV))) {
                Thread acker = new Thread(() -> {
                    try {
                        while (true) {
                            String m = notify.readText(60_000);
                            if (NotifyMessages.DO_CHECKPOINT.equals(m)) {
                                notify.send(NotifyMessages.CHECKPOINT_DONE);
                            }
                        }
                    } catch (IOException e) {
                        // closed at the end of the test
                    }
                }, "test-notifier");
                acker.setDaemon(true);
                acker.start();

                int first = lan.awaitCounter(Duration.ofSeconds(90));
                int second = lan.counter(Duration.ofSeconds(10));
                int third = lan.counter(Duration.ofSeconds(10));
                assertThat(second).isEqualTo(first + 1);
                assertThat(third).isEqualTo(first + 2);
                String date = lan.httpGet("/cgi-bin/date", Duration.ofSeconds(10));
                assertThat(date).as("a response that differs between the VMs still arrives, after a checkpoint").contains("epoch=");
                var stats = cmp.stats();
                System.out.printf("interop: counter %d..%d through colo compare; matched=%d released=%d compared_bytes=%d checkpoints=%d%n",
                        first, third, stats.matchedFrames(), stats.released(), stats.comparedBytes(), cmp.checkpointsRequested());
                assertThat(stats.matchedFrames()).as("frames released because the SVM's matched").isPositive();
                assertThat(stats.comparedBytes()).isPositive();
            }
        } finally {
            for (Process p : procs) {
                p.destroy();
            }
            for (Process p : procs) {
                if (!p.waitFor(10, java.util.concurrent.TimeUnit.SECONDS)) {
                    p.destroyForcibly();
                }
            }
            LabLan.deleteHostTap(pvmTap);
            LabLan.deleteHostTap(svmTap);
        }
    }
}
