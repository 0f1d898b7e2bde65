package dev.colo.proxy.packet;

import io.netty.buffer.ByteBuf;

/**
 * A parsed view of one Ethernet frame: offsets and header fields, no copies. Reusable: {@link
 * #parse} overwrites every field. Offsets are absolute indexes into the buffer.
 */
public final class PacketView {
    public static final int ETH_HEADER = 14;
    public static final int ETHERTYPE_IPV4 = 0x0800;
    public static final int ETHERTYPE_IPV6 = 0x86dd;
    public static final int ETHERTYPE_ARP = 0x0806;
    public static final int ETHERTYPE_VLAN = 0x8100;
    public static final int PROTO_ICMP = 1;
    public static final int PROTO_TCP = 6;
    public static final int PROTO_UDP = 17;
    public static final int PROTO_ICMPV6 = 58;

    public static final int TCP_FIN = 0x01;
    public static final int TCP_SYN = 0x02;
    public static final int TCP_RST = 0x04;
    public static final int TCP_PSH = 0x08;
    public static final int TCP_ACK = 0x10;

    private ByteBuf buf;
    private Classification classification;
    private int frameStart;
    private int frameEnd;
    private int vlan;
    private int etherType;
    private int l3Offset;
    private int ipVersion;
    private int protocol;
    private long srcHi;
    private long srcLo;
    private long dstHi;
    private long dstLo;
    private int l4Offset;
    private int l3End;
    private int srcPort;
    private int dstPort;
    private long seq;
    private long ack;
    private int tcpFlags;
    private int payloadOffset;
    private int payloadLength;

    /** Parses the readable bytes of {@code frame} (an Ethernet frame, no vnet header). */
    public PacketView parse(ByteBuf frame) {
        buf = frame;
        frameStart = frame.readerIndex();
        frameEnd = frame.writerIndex();
        vlan = -1;
        etherType = -1;
        l3Offset = l4Offset = l3End = payloadOffset = -1;
        ipVersion = protocol = srcPort = dstPort = tcpFlags = payloadLength = 0;
        srcHi = srcLo = dstHi = dstLo = seq = ack = 0;
        classification = classify();
        return this;
    }

    private Classification classify() {
        int p = frameStart;
        if (frameEnd - p < ETH_HEADER) {
            return Classification.MALFORMED_ETHERNET;
        }
        int type = buf.getUnsignedShort(p + 12);
        p += ETH_HEADER;
        if (type == ETHERTYPE_VLAN) {
            if (frameEnd - p < 4) {
                return Classification.MALFORMED_ETHERNET;
            }
            vlan = buf.getUnsignedShort(p) & 0x0fff;
            type = buf.getUnsignedShort(p + 2);
            p += 4;
        }
        etherType = type;
        l3Offset = p;
        switch (type) {
            case ETHERTYPE_IPV4:
                return parseIpv4(p);
            case ETHERTYPE_IPV6:
                return parseIpv6(p);
            case ETHERTYPE_ARP:
                return frameEnd - p >= 28 ? Classification.ARP : Classification.MALFORMED_IP;
            default:
                return Classification.NON_IP;
        }
    }

    private Classification parseIpv4(int p) {
        if (frameEnd - p < 20) {
            return Classification.MALFORMED_IP;
        }
        int vihl = buf.getUnsignedByte(p);
        int ihl = (vihl & 0x0f) * 4;
        int total = buf.getUnsignedShort(p + 2);
        if (vihl >> 4 != 4 || ihl < 20 || total < ihl || p + total > frameEnd) {
            return Classification.MALFORMED_IP;
        }
        ipVersion = 4;
        protocol = buf.getUnsignedByte(p + 9);
        srcLo = buf.getUnsignedInt(p + 12);
        dstLo = buf.getUnsignedInt(p + 16);
        l3End = p + total; // Ethernet padding after the IP packet is not data.
        l4Offset = p + ihl;
        int frag = buf.getUnsignedShort(p + 6);
        if ((frag & 0x3fff) != 0) {
            return Classification.OTHER_IP; // fragments carry no reliable L4 header
        }
        return parseL4();
    }

    private Classification parseIpv6(int p) {
        if (frameEnd - p < 40) {
            return Classification.MALFORMED_IP;
        }
        if (buf.getUnsignedByte(p) >> 4 != 6) {
            return Classification.MALFORMED_IP;
        }
        int payload = buf.getUnsignedShort(p + 4);
        if (p + 40 + payload > frameEnd) {
            return Classification.MALFORMED_IP;
        }
        ipVersion = 6;
        protocol = buf.getUnsignedByte(p + 6);
        srcHi = buf.getLong(p + 8);
        srcLo = buf.getLong(p + 16);
        dstHi = buf.getLong(p + 24);
        dstLo = buf.getLong(p + 32);
        l3End = p + 40 + payload;
        l4Offset = p + 40;
        // Extension headers are compared whole with the rest: they are rare on a guest's replies.
        return parseL4();
    }

    private Classification parseL4() {
        int avail = l3End - l4Offset;
        switch (protocol) {
            case PROTO_TCP: {
                if (avail < 20) {
                    return Classification.MALFORMED_L4;
                }
                int dataOffset = (buf.getUnsignedByte(l4Offset + 12) >> 4) * 4;
                if (dataOffset < 20 || dataOffset > avail) {
                    return Classification.MALFORMED_L4;
                }
                srcPort = buf.getUnsignedShort(l4Offset);
                dstPort = buf.getUnsignedShort(l4Offset + 2);
                seq = buf.getUnsignedInt(l4Offset + 4);
                ack = buf.getUnsignedInt(l4Offset + 8);
                tcpFlags = buf.getUnsignedByte(l4Offset + 13);
                payloadOffset = l4Offset + dataOffset;
                payloadLength = l3End - payloadOffset;
                return Classification.TCP;
            }
            case PROTO_UDP: {
                if (avail < 8) {
                    return Classification.MALFORMED_L4;
                }
                srcPort = buf.getUnsignedShort(l4Offset);
                dstPort = buf.getUnsignedShort(l4Offset + 2);
                payloadOffset = l4Offset + 8;
                payloadLength = l3End - payloadOffset;
                return Classification.UDP;
            }
            case PROTO_ICMP:
            case PROTO_ICMPV6: {
                if (avail < 8) {
                    return Classification.MALFORMED_L4;
                }
                srcPort = buf.getUnsignedShort(l4Offset + 4); // the echo identifier
                payloadOffset = l4Offset;
                payloadLength = avail;
                return Classification.ICMP;
            }
            default:
                return Classification.OTHER_IP;
        }
    }

    public Classification classification() {
        return classification;
    }

    public ByteBuf buffer() {
        return buf;
    }

    public int frameStart() {
        return frameStart;
    }

    public int frameLength() {
        return frameEnd - frameStart;
    }

    public int vlan() {
        return vlan;
    }

    public int etherType() {
        return etherType;
    }

    public int ipVersion() {
        return ipVersion;
    }

    public int protocol() {
        return protocol;
    }

    public int l3Offset() {
        return l3Offset;
    }

    public int l4Offset() {
        return l4Offset;
    }

    /** End of the IP packet (excludes Ethernet padding). */
    public int l3End() {
        return l3End;
    }

    public int srcPort() {
        return srcPort;
    }

    public int dstPort() {
        return dstPort;
    }

    public long seq() {
        return seq;
    }

    public long ack() {
        return ack;
    }

    public int tcpFlags() {
        return tcpFlags;
    }

    public boolean hasFlag(int flag) {
        return (tcpFlags & flag) != 0;
    }

    public int payloadOffset() {
        return payloadOffset;
    }

    public int payloadLength() {
        return payloadLength;
    }

    /** The flow this frame belongs to, in the direction it travels. */
    public FlowKey flowKey() {
        int kind = classification == Classification.TCP || classification == Classification.UDP || classification == Classification.ICMP
                ? protocol : classification == Classification.OTHER_IP ? 256 + protocol : 512 + Math.max(etherType, 0);
        return new FlowKey(vlan, kind, srcHi, srcLo, dstHi, dstLo, srcPort, dstPort);
    }

    /** The ICMP type of an ICMP (or ICMPv6) packet: 0 is an IPv4 echo reply. Only for {@link Classification#ICMP}. */
    public int icmpType() {
        return buf.getUnsignedByte(l4Offset);
    }

    /** Bytes after the IP header (to the end of the IP packet), as UDP/ICMP comparison wants. */
    public int afterIpOffset() {
        return l4Offset;
    }

    public int afterIpLength() {
        return l3End - l4Offset;
    }
}
