/**
 * Pure, zero-copy parsers for the frames the proxy sees: Ethernet (with 802.1Q), ARP, IPv4, IPv6,
 * TCP (with options), UDP and ICMP over a Netty {@code ByteBuf}. Only {@code io.netty.buffer} is used:
 * no channels, no threads. Malformed input is classified, never thrown.
 */
package dev.colo.proxy.packet;
