package dev.colo.proxy.packet;

/**
 * A flow in one direction: VLAN, kind (IP protocol, or a marker for non-IP by EtherType), addresses
 * (IPv4 in the low word) and ports (ICMP: the echo identifier).
 */
public record FlowKey(int vlan, int kind, long srcHi, long srcLo, long dstHi, long dstLo, int srcPort, int dstPort) {

    public boolean isTcp() {
        return kind == PacketView.PROTO_TCP;
    }

    /** The same flow seen from the other end. */
    public FlowKey reversed() {
        return new FlowKey(vlan, kind, dstHi, dstLo, srcHi, srcLo, dstPort, srcPort);
    }

    @Override
    public String toString() {
        String proto = switch (kind) {
            case PacketView.PROTO_TCP -> "tcp";
            case PacketView.PROTO_UDP -> "udp";
            case PacketView.PROTO_ICMP, PacketView.PROTO_ICMPV6 -> "icmp";
            default -> kind >= 512 ? String.format("eth/0x%04x", kind - 512) : "ip/" + (kind - 256);
        };
        return proto + " " + addr(srcHi, srcLo) + ":" + srcPort + ">" + addr(dstHi, dstLo) + ":" + dstPort + (vlan >= 0 ? " vlan " + vlan : "");
    }

    private static String addr(long hi, long lo) {
        if (hi == 0 && lo <= 0xffffffffL) {
            return ((lo >> 24) & 0xff) + "." + ((lo >> 16) & 0xff) + "." + ((lo >> 8) & 0xff) + "." + (lo & 0xff);
        }
        return String.format("[%016x%016x]", hi, lo);
    }
}
