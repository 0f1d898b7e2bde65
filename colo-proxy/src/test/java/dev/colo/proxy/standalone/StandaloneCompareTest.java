package dev.colo.proxy.standalone;

import static dev.colo.proxy.packet.PacketView.TCP_ACK;
import static dev.colo.proxy.packet.PacketView.TCP_SYN;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.awaitility.Awaitility.await;

import dev.colo.proxy.Frames;
import dev.colo.proxy.standalone.StandaloneCompare.Role;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import org.junit.jupiter.api.Test;

/** colo compare over real loopback sockets, as QEMU's filters would drive it. */
class StandaloneCompareTest {
    static byte[] tcp(long seq, int flags, String payload) {
        return FramedSocket.bytes(Frames.tcpBuf(Frames.VM_IP, Frames.CLIENT_IP, 80, 40000, seq, 1001, flags, payload.getBytes(),
                Frames.VM_MAC, Frames.CLIENT_MAC));
    }

    static CompareOptions tcpServers(Endpoint notify) {
        Endpoint any = Endpoint.parse("tcp:127.0.0.1:0,server");
        return new CompareOptions(any, any, any, notify, 200, 50, 1024, false);
    }

    @Test
    void comparesReleasesAndCheckpointsThroughTheNotifyProtocol() throws Exception {
        try (StandaloneCompare cmp = new StandaloneCompare(tcpServers(Endpoint.parse("tcp:127.0.0.1:0,server"))).start();
                FramedSocket pri = FramedSocket.tcp(cmp.boundPort(Role.PRIMARY_IN));
                FramedSocket sec = FramedSocket.tcp(cmp.boundPort(Role.SECONDARY_IN));
                FramedSocket out = FramedSocket.tcp(cmp.boundPort(Role.OUTDEV));
                FramedSocket notify = FramedSocket.tcp(cmp.boundPort(Role.NOTIFY_DEV))) {
            notify.send(NotifyMessages.PROXY_INIT);
            assertThat(notify.readText(2000)).isEqualTo(NotifyMessages.COMPARE_INIT);

            byte[] synAck = tcp(5000, TCP_SYN | TCP_ACK, "");
            pri.send(synAck);
            sec.send(tcp(9000, TCP_SYN | TCP_ACK, ""));
            assertThat(out.read(2000)).isEqualTo(synAck);

            byte[] hello = tcp(5001, TCP_ACK, "hello world");
            pri.send(hello);
            sec.send(tcp(9001, TCP_ACK, "hello "));
            sec.send(tcp(9007, TCP_ACK, "world"));
            assertThat(out.read(2000)).isEqualTo(hello);

            // Poison on the secondary socket: zero length, then an oversize length with its bytes.
            sec.sendRaw(new byte[] {0, 0, 0, 0});
            sec.sendRaw(new byte[] {0, 2, 0, 0});
            sec.sendRaw(new byte[0x20000]);

            byte[] diverging = tcp(5012, TCP_ACK, "answer A");
            pri.send(diverging);
            sec.send(tcp(9012, TCP_ACK, "answer B"));
            assertThat(notify.readText(2000)).isEqualTo(NotifyMessages.DO_CHECKPOINT);
            assertThat(out.read(200)).as("diverging output is held").isNull();
            notify.send(NotifyMessages.CHECKPOINT_DONE);
            assertThat(out.read(2000)).isEqualTo(diverging);

            // Still comparing on both sockets after all that.
            byte[] after = tcp(5020, TCP_ACK, "after");
            pri.send(after);
            sec.send(tcp(5020, TCP_ACK, "after"));
            assertThat(out.read(2000)).isEqualTo(after);
            assertThat(cmp.errors(Role.SECONDARY_IN).zeroLength.sum()).isEqualTo(1);
            assertThat(cmp.errors(Role.SECONDARY_IN).oversize.sum()).isEqualTo(1);
            assertThat(cmp.checkpointsRequested()).isEqualTo(1);
            assertThat(cmp.stats().matchedFrames()).isGreaterThanOrEqualTo(3);
        }
    }

    @Test
    void heldOutputAgesIntoACheckpoint() throws Exception {
        try (StandaloneCompare cmp = new StandaloneCompare(tcpServers(Endpoint.parse("tcp:127.0.0.1:0,server"))).start();
                FramedSocket pri = FramedSocket.tcp(cmp.boundPort(Role.PRIMARY_IN));
                FramedSocket out = FramedSocket.tcp(cmp.boundPort(Role.OUTDEV));
                FramedSocket notify = FramedSocket.tcp(cmp.boundPort(Role.NOTIFY_DEV))) {
            notify.send(NotifyMessages.PROXY_INIT);
            assertThat(notify.readText(2000)).isEqualTo(NotifyMessages.COMPARE_INIT);
            byte[] lonely = tcp(1, TCP_ACK, "nobody answers");
            pri.send(lonely);
            assertThat(notify.readText(3000)).isEqualTo(NotifyMessages.DO_CHECKPOINT);
            notify.send(NotifyMessages.CHECKPOINT_DONE);
            assertThat(out.read(2000)).isEqualTo(lonely);
        }
    }

    @Test
    void withoutNotifyDevItReleasesAndCountsInMonitorMode() throws Exception {
        try (StandaloneCompare cmp = new StandaloneCompare(tcpServers(null)).start();
                FramedSocket pri = FramedSocket.tcp(cmp.boundPort(Role.PRIMARY_IN));
                FramedSocket sec = FramedSocket.tcp(cmp.boundPort(Role.SECONDARY_IN));
                FramedSocket out = FramedSocket.tcp(cmp.boundPort(Role.OUTDEV))) {
            byte[] a = FramedSocket.bytes(new Frames().udp(53, 5353, "A".getBytes()).data());
            pri.send(a);
            sec.send(FramedSocket.bytes(new Frames().udp(53, 5353, "B".getBytes()).data()));
            assertThat(out.read(2000)).isEqualTo(a);
            await().atMost(Duration.ofSeconds(2)).until(() -> cmp.checkpointsRequested() == 1);
        }
    }

    @Test
    void worksOverUnixSockets() throws Exception {
        Path dir = Files.createTempDirectory("colo-compare");
        Endpoint p = Endpoint.parse("unix:" + dir.resolve("pri.sock") + ",server");
        Endpoint s = Endpoint.parse("unix:" + dir.resolve("sec.sock") + ",server");
        Endpoint o = Endpoint.parse("unix:" + dir.resolve("out.sock") + ",server");
        try (StandaloneCompare cmp = new StandaloneCompare(new CompareOptions(p, s, o, null, 1000, 100, 64, false)).start();
                FramedSocket pri = FramedSocket.unix(dir.resolve("pri.sock"));
                FramedSocket sec = FramedSocket.unix(dir.resolve("sec.sock"));
                FramedSocket out = FramedSocket.unix(dir.resolve("out.sock"))) {
            byte[] a = FramedSocket.bytes(new Frames().udp(1, 2, "same".getBytes()).data());
            pri.send(a);
            sec.send(a.clone());
            assertThat(out.read(2000)).isEqualTo(a);
        }
        assertThat(dir.resolve("pri.sock")).doesNotExist();
    }

    @Test
    void badSocketSpecsAreClearErrors() {
        assertThatThrownBy(() -> Endpoint.parse("tcp:localhost")).hasMessageContaining("expected tcp:HOST:PORT");
        assertThatThrownBy(() -> Endpoint.parse("tcp:localhost:http")).hasMessageContaining("is not a number");
        assertThatThrownBy(() -> Endpoint.parse("udp:1.2.3.4:5")).hasMessageContaining("unknown socket type");
        assertThatThrownBy(() -> Endpoint.parse("tcp:h:70000")).hasMessageContaining("out of range");
        assertThat(Endpoint.parse("tcp:[::1]:9000,server")).satisfies(e -> {
            assertThat(e.host()).isEqualTo("::1");
            assertThat(e.server()).isTrue();
        });
        assertThatThrownBy(() -> new CompareOptions(null, null, null, null, 0, 1, 1, false)).hasMessageContaining("compare timeout");
    }
}
