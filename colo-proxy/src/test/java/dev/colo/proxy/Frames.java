package dev.colo.proxy;

import dev.colo.proxy.frame.Frame;
import dev.colo.proxy.packet.Checksums;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.Unpooled;
import java.util.ArrayList;
import java.util.List;

/**
 * Builds real Ethernet/IPv4 frames with correct checksums for tests, and remembers every buffer it
 * made so a test can assert that nothing leaked (every reference released exactly once).
 */
public final class Frames {
    public static final byte[] VM_MAC = {0x52, 0x54, 0x00, 0x12, 0x34, 0x56};
    public static final byte[] CLIENT_MAC = {0x02, 0x00, 0x00, 0x00, 0x00, 0x01};
    public static final int VM_IP = 0x0ac90002;      // 10.201.0.2
    public static final int CLIENT_IP = 0x0ac90001;  // 10.201.0.1

    private final List<ByteBuf> made = new ArrayList<>();

    /** A TCP frame from the VM (src) to the client (dst). */
    public Frame tcp(int srcPort, int dstPort, long seq, long ack, int flags, byte[] payload) {
        return Frame.of(track(tcpBuf(VM_IP, CLIENT_IP, srcPort, dstPort, seq, ack, flags, payload, VM_MAC, CLIENT_MAC)));
    }

    /** A TCP frame from the client to the VM. */
    public Frame tcpIn(int srcPort, int dstPort, long seq, long ack, int flags, byte[] payload) {
        return Frame.of(track(tcpBuf(CLIENT_IP, VM_IP, srcPort, dstPort, seq, ack, flags, payload, CLIENT_MAC, VM_MAC)));
    }

    public Frame udp(int srcPort, int dstPort, byte[] payload) {
        int ipLen = 20 + 8 + payload.length;
        ByteBuf b = Unpooled.buffer(14 + ipLen);
        eth(b, VM_MAC, CLIENT_MAC, 0x0800);
        ipv4(b, ipLen, 17, VM_IP, CLIENT_IP);
        int udp = b.writerIndex();
        b.writeShort(srcPort).writeShort(dstPort).writeShort(8 + payload.length).writeShort(0).writeBytes(payload);
        b.setShort(udp + 6, l4Checksum(b, udp, 8 + payload.length, 17, VM_IP, CLIENT_IP));
        return Frame.of(track(b));
    }

    /** An ICMP message from the VM to the client: type 0 is an echo reply, 8 an echo request. */
    public Frame icmp(int type, byte[] payload) {
        int ipLen = 20 + 8 + payload.length;
        ByteBuf b = Unpooled.buffer(14 + ipLen);
        eth(b, VM_MAC, CLIENT_MAC, 0x0800);
        ipv4(b, ipLen, 1, VM_IP, CLIENT_IP);
        b.writeByte(type).writeByte(0).writeShort(0).writeShort(7).writeShort(1).writeBytes(payload);
        return Frame.of(track(b));
    }

    public Frame raw(byte[] bytes) {
        return Frame.of(track(Unpooled.buffer(bytes.length).writeBytes(bytes)));
    }

    public Frame arp(int senderIp, int targetIp) {
        ByteBuf b = Unpooled.buffer(42);
        eth(b, VM_MAC, new byte[] {-1, -1, -1, -1, -1, -1}, 0x0806);
        b.writeShort(1).writeShort(0x0800).writeByte(6).writeByte(4).writeShort(1);
        b.writeBytes(VM_MAC).writeInt(senderIp).writeZero(6).writeInt(targetIp);
        return Frame.of(track(b));
    }

    public ByteBuf track(ByteBuf b) {
        made.add(b);
        return b;
    }

    /** Buffers still holding a reference: a leak (or a frame still legitimately held). */
    public long unreleased() {
        return made.stream().filter(b -> b.refCnt() > 0).count();
    }

    public static ByteBuf tcpBuf(int src, int dst, int srcPort, int dstPort, long seq, long ack, int flags, byte[] payload,
            byte[] srcMac, byte[] dstMac) {
        int tcpLen = 20 + 12 + payload.length; // with NOP,NOP,timestamp options
        int ipLen = 20 + tcpLen;
        ByteBuf b = Unpooled.buffer(14 + ipLen);
        eth(b, srcMac, dstMac, 0x0800);
        ipv4(b, ipLen, 6, src, dst);
        int tcp = b.writerIndex();
        b.writeShort(srcPort).writeShort(dstPort).writeInt((int) seq).writeInt((int) ack);
        b.writeByte(8 << 4).writeByte(flags).writeShort(65535).writeShort(0).writeShort(0);
        b.writeByte(1).writeByte(1).writeByte(8).writeByte(10).writeInt((int) (seq * 7)).writeInt(0);
        b.writeBytes(payload);
        b.setShort(tcp + 16, l4Checksum(b, tcp, tcpLen, 6, src, dst));
        return b;
    }

    static void eth(ByteBuf b, byte[] src, byte[] dst, int type) {
        b.writeBytes(dst).writeBytes(src).writeShort(type);
    }

    static void ipv4(ByteBuf b, int totalLen, int proto, int src, int dst) {
        int start = b.writerIndex();
        b.writeByte(0x45).writeByte(0).writeShort(totalLen).writeShort(0x1234).writeShort(0x4000)
                .writeByte(64).writeByte(proto).writeShort(0).writeInt(src).writeInt(dst);
        byte[] hdr = new byte[20];
        b.getBytes(start, hdr);
        b.setShort(start + 10, ~Checksums.sum(hdr, 0, 20, 0) & 0xffff);
    }

    /** The TCP/UDP checksum over the pseudo header and segment. */
    public static int l4Checksum(ByteBuf b, int l4, int len, int proto, int src, int dst) {
        byte[] seg = new byte[len];
        b.getBytes(l4, seg);
        int pseudo = ((src >>> 16) & 0xffff) + (src & 0xffff) + ((dst >>> 16) & 0xffff) + (dst & 0xffff) + proto + len;
        pseudo = (pseudo & 0xffff) + (pseudo >>> 16);
        byte[] copy = seg.clone();
        // Zero the checksum field before summing.
        int csumOff = proto == 6 ? 16 : 6;
        copy[csumOff] = 0;
        copy[csumOff + 1] = 0;
        return ~Checksums.sum(copy, 0, len, pseudo) & 0xffff;
    }

    /** True when the TCP checksum of a frame built here is valid. */
    public static boolean tcpChecksumValid(ByteBuf b) {
        int ip = b.readerIndex() + 14;
        int ihl = (b.getUnsignedByte(ip) & 0xf) * 4;
        int total = b.getUnsignedShort(ip + 2);
        int l4 = ip + ihl;
        int src = b.getInt(ip + 12);
        int dst = b.getInt(ip + 16);
        return l4Checksum(b, l4, total - ihl, 6, src, dst) == b.getUnsignedShort(l4 + 16);
    }

    public static byte[] bytes(int n, long seed) {
        byte[] out = new byte[n];
        new java.util.Random(seed).nextBytes(out);
        return out;
    }
}
