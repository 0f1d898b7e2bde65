package dev.colo.daemon.sim;

import dev.colo.proxy.frame.Frame;
import dev.colo.proxy.packet.PacketView;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.Unpooled;

/** Builds and reads the Ethernet/IPv4 frames the simulated guests and clients exchange. */
final class SimPackets {
    static final int MSS = 120;
    static final byte[] BROADCAST = {-1, -1, -1, -1, -1, -1};

    private SimPackets() {}

    static byte[] mac(int host) {
        return new byte[] {0x52, 0x54, 0x00, 0x00, (byte) (host >> 8), (byte) host};
    }

    static int ip(int host) {
        return 0x0a000000 | host; // 10.0.x.y
    }

    static String ipText(int ip) {
        return ((ip >> 24) & 0xff) + "." + ((ip >> 16) & 0xff) + "." + ((ip >> 8) & 0xff) + "." + (ip & 0xff);
    }

    private static ByteBuf ipv4(byte[] dstMac, byte[] srcMac, int proto, int srcIp, int dstIp, int l4Len) {
        ByteBuf b = Unpooled.buffer(14 + 20 + l4Len);
        b.writeBytes(dstMac).writeBytes(srcMac).writeShort(PacketView.ETHERTYPE_IPV4);
        int start = b.writerIndex();
        b.writeByte(0x45).writeByte(0).writeShort(20 + l4Len).writeShort(0).writeShort(0x4000).writeByte(64).writeByte(proto)
                .writeShort(0).writeInt(srcIp).writeInt(dstIp);
        int sum = 0;
        for (int i = 0; i < 20; i += 2) {
            sum += b.getUnsignedShort(start + i);
        }
        while ((sum >> 16) != 0) {
            sum = (sum & 0xffff) + (sum >> 16);
        }
        b.setShort(start + 10, ~sum & 0xffff);
        return b;
    }

    static Frame tcp(byte[] dstMac, byte[] srcMac, int srcIp, int dstIp, int srcPort, int dstPort, long seq, long ack, int flags,
            byte[] payload, int off, int len) {
        ByteBuf b = ipv4(dstMac, srcMac, PacketView.PROTO_TCP, srcIp, dstIp, 20 + len);
        b.writeShort(srcPort).writeShort(dstPort).writeInt((int) seq).writeInt((int) ack).writeByte(5 << 4).writeByte(flags)
                .writeShort(65535).writeShort(0).writeShort(0);
        if (len > 0) {
            b.writeBytes(payload, off, len);
        }
        return Frame.of(b);
    }

    static Frame udp(byte[] dstMac, byte[] srcMac, int srcIp, int dstIp, int srcPort, int dstPort, byte[] payload) {
        ByteBuf b = ipv4(dstMac, srcMac, PacketView.PROTO_UDP, srcIp, dstIp, 8 + payload.length);
        b.writeShort(srcPort).writeShort(dstPort).writeShort(8 + payload.length).writeShort(0).writeBytes(payload);
        return Frame.of(b);
    }

    /** ICMP echo request (type 8) or reply (type 0). */
    static Frame icmpEcho(byte[] dstMac, byte[] srcMac, int srcIp, int dstIp, int type, int id, int seq) {
        ByteBuf b = ipv4(dstMac, srcMac, PacketView.PROTO_ICMP, srcIp, dstIp, 8);
        b.writeByte(type).writeByte(0).writeShort(0).writeShort(id).writeShort(seq);
        return Frame.of(b);
    }

    static byte[] payload(PacketView v) {
        byte[] p = new byte[v.payloadLength()];
        v.buffer().getBytes(v.payloadOffset(), p);
        return p;
    }

    static byte[] dstMac(ByteBuf eth) {
        byte[] m = new byte[6];
        eth.getBytes(eth.readerIndex(), m);
        return m;
    }

    static byte[] srcMac(ByteBuf eth) {
        byte[] m = new byte[6];
        eth.getBytes(eth.readerIndex() + 6, m);
        return m;
    }

    static int srcIp(PacketView v) {
        return v.buffer().getInt(v.l3Offset() + 12);
    }

    static int dstIp(PacketView v) {
        return v.buffer().getInt(v.l3Offset() + 16);
    }

    static long macKey(byte[] m) {
        long k = 0;
        for (byte x : m) {
            k = (k << 8) | (x & 0xff);
        }
        return k;
    }
}
