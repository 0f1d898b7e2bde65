package dev.colo.host.lab;

import static org.assertj.core.api.Assertions.assertThat;

import dev.colo.host.tap.TapDevice;
import dev.colo.lab.Lab;
import dev.colo.host.posix.NetNamespace;
import dev.colo.host.posix.Command;
import java.nio.ByteBuffer;
import java.time.Duration;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * A tap opened through our JNA binding carries real frames both ways: a ping from a namespace
 * reaches us as an ARP request, our ARP reply lands in the namespace's neighbour table, and the
 * echo request follows. Closing the fd removes the device.
 */
class TapDeviceIT {
    static final byte[] OUR_MAC = {0x02, (byte) 0xc0, 0x10, 0x00, 0x00, 0x22};
    static final byte[] OUR_IP = {10, (byte) 202, 0, 2};

    @BeforeAll
    static void lab() {
        Lab.require();
    }

    @Test
    void readsAndWritesFramesInsideANamespace() throws Exception {
        String name = "ctap" + (ProcessHandle.current().pid() % 100000);
        try (NetNamespace ns = NetNamespace.create("tap"); TapDevice tap = TapDevice.open(name)) {
            assertThat(tap.name()).isEqualTo(name);
            ns.adopt(name, "10.202.0.1/24");
            Thread ping = new Thread(() -> ns.exec(Duration.ofSeconds(10), "ping", "-c", "3", "-W", "1", "10.202.0.2"));
            ping.start();

            ByteBuffer buf = ByteBuffer.allocateDirect(TapDevice.MAX_FRAME);
            boolean sawArp = false;
            boolean sawEcho = false;
            long deadline = System.nanoTime() + Duration.ofSeconds(8).toNanos();
            while (!(sawArp && sawEcho) && System.nanoTime() < deadline) {
                buf.clear();
                int n = tap.readFrame(buf, deadline);
                if (n == 0) {
                    continue;
                }
                buf.flip();
                int etherType = buf.getShort(12) & 0xffff;
                if (etherType == 0x0806 && buf.getShort(20) == 1 && targetIs(buf, 38)) {
                    sawArp = true;
                    ByteBuffer reply = arpReply(buf);
                    tap.writeFrame(reply, System.nanoTime() + 1_000_000_000L);
                } else if (etherType == 0x0800 && buf.get(23) == 1 && targetIs(buf, 30) && buf.get(34) == 8) {
                    sawEcho = true;
                }
            }
            ping.join(15_000);
            assertThat(sawArp).as("ARP request for 10.202.0.2 read from the tap").isTrue();
            assertThat(sawEcho).as("ICMP echo request read after our ARP reply").isTrue();
            String neigh = ns.exec("ip", "neigh", "show", "10.202.0.2").orThrow().out();
            assertThat(neigh).contains("02:c0:10:00:00:22");
        }
        // A non-persistent tap disappears with its fd (the namespace is gone too).
        assertThat(Command.run(Duration.ofSeconds(5), "ip", "link", "show", name).ok()).isFalse();
    }

    private static boolean targetIs(ByteBuffer frame, int ipOffset) {
        for (int i = 0; i < 4; i++) {
            if (frame.get(ipOffset + i) != OUR_IP[i]) {
                return false;
            }
        }
        return true;
    }

    private static ByteBuffer arpReply(ByteBuffer req) {
        ByteBuffer r = ByteBuffer.allocateDirect(42);
        byte[] senderMac = new byte[6];
        byte[] senderIp = new byte[4];
        req.get(22, senderMac);
        req.get(28, senderIp);
        r.put(senderMac).put(OUR_MAC).putShort((short) 0x0806);
        r.putShort((short) 1).putShort((short) 0x0800).put((byte) 6).put((byte) 4).putShort((short) 2);
        r.put(OUR_MAC).put(OUR_IP).put(senderMac).put(senderIp);
        return r.flip();
    }
}
