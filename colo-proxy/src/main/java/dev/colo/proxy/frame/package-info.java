/**
 * QEMU's socket framing (be32 length, optional be32 vnet header length, then the frame) as Netty
 * codecs, and the {@link dev.colo.proxy.frame.Frame} that travels through the proxy.
 */
package dev.colo.proxy.frame;
