package dev.colo.daemon.sim;

import dev.colo.proxy.frame.Frame;
import dev.colo.proxy.packet.PacketView;
import dev.colo.testkit.sim.SimWorld;

/**
 * A per-frame trace of one client port for replaying a failing seed: {@code -Dcolo.sim.trace=40000}
 * prints every TCP frame of that port where it passes (LAN, guest NICs) and every request a guest
 * applies, in virtual time.
 */
final class SimTrace {
    static final int PORT = Integer.getInteger("colo.sim.trace", -1);
    static SimWorld world;

    private SimTrace() {}

    static boolean on() {
        return PORT >= 0;
    }

    static void frame(String where, Frame f) {
        if (PORT < 0) {
            return;
        }
        PacketView v = new PacketView().parse(f.ethernet());
        if (v.classification().malformed() || v.protocol() != PacketView.PROTO_TCP || (v.srcPort() != PORT && v.dstPort() != PORT)) {
            return;
        }
        String flags = (v.hasFlag(PacketView.TCP_SYN) ? "S" : "") + (v.hasFlag(PacketView.TCP_FIN) ? "F" : "") + (v.hasFlag(PacketView.TCP_RST) ? "R" : "")
                + (v.hasFlag(PacketView.TCP_ACK) ? "." : "");
        String payload = v.payloadLength() == 0 ? "" : " \"" + new String(SimPackets.payload(v)).replace("\n", "\\n") + "\"";
        System.out.printf("trace t=%6d %-28s %5d>%-5d [%s] seq %d ack %d len %d%s%n", world.nowNs() / 1_000_000 - 1000, where, v.srcPort(),
                v.dstPort(), flags, v.seq(), v.ack(), v.payloadLength(), payload.length() > 60 ? payload.substring(0, 60) + "\"" : payload);
    }

    static void note(String what) {
        if (PORT >= 0) {
            System.out.printf("trace t=%6d %s%n", world.nowNs() / 1_000_000 - 1000, what);
        }
    }
}
