package dev.colo.proxy.packet;

import io.netty.buffer.ByteBuf;
import io.netty.buffer.ByteBufAllocator;

/** ARP frames the daemon itself sends. */
public final class Arp {
    private Arp() {}

    /**
     * A gratuitous ARP (broadcast request for our own address) so switches and neighbours learn
     * that {@code mac} now lives behind this port. Sent by the secondary when it takes over.
     */
    public static ByteBuf gratuitous(ByteBufAllocator alloc, byte[] mac, int ipv4) {
        ByteBuf b = alloc.buffer(60);
        b.writeBytes(new byte[] {-1, -1, -1, -1, -1, -1}).writeBytes(mac).writeShort(PacketView.ETHERTYPE_ARP);
        b.writeShort(1).writeShort(PacketView.ETHERTYPE_IPV4).writeByte(6).writeByte(4).writeShort(1);
        b.writeBytes(mac).writeInt(ipv4).writeZero(6).writeInt(ipv4);
        b.writeZero(60 - b.readableBytes()); // minimum Ethernet payload
        return b;
    }

    public static byte[] parseMac(String mac) {
        String[] p = mac.split(":");
        if (p.length != 6) {
            throw new IllegalArgumentException("not a MAC address: " + mac);
        }
        byte[] out = new byte[6];
        for (int i = 0; i < 6; i++) {
            out[i] = (byte) Integer.parseInt(p[i], 16);
        }
        return out;
    }

    public static int parseIpv4(String ip) {
        String[] p = ip.split("\\.");
        if (p.length != 4) {
            throw new IllegalArgumentException("not an IPv4 address: " + ip);
        }
        int v = 0;
        for (String s : p) {
            int o = Integer.parseInt(s);
            if (o < 0 || o > 255) {
                throw new IllegalArgumentException("not an IPv4 address: " + ip);
            }
            v = (v << 8) | o;
        }
        return v;
    }
}
