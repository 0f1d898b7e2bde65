package dev.colo.proxy.packet;

/** What a frame turned out to be. Every frame gets exactly one. */
public enum Classification {
    TCP,
    UDP,
    ICMP,
    /** IPv4/IPv6 with another protocol (or a fragment): compared whole. */
    OTHER_IP,
    ARP,
    /** Any other EtherType: compared whole. */
    NON_IP,
    /** Shorter than an Ethernet header. */
    MALFORMED_ETHERNET,
    /** IP header truncated, wrong version, bad header length or total length. */
    MALFORMED_IP,
    /** TCP/UDP/ICMP header truncated or a TCP data offset out of range. */
    MALFORMED_L4;

    public boolean malformed() {
        return this == MALFORMED_ETHERNET || this == MALFORMED_IP || this == MALFORMED_L4;
    }
}
