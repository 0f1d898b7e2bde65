package dev.colo.proxy.frame;

import io.netty.buffer.ByteBuf;

/**
 * One frame as carried by QEMU's socket framing: the bytes (an optional vnet header of {@code
 * vnetHdrLen} bytes, then the Ethernet frame) and the vnet header length. Owns one reference to
 * {@code data}; whoever holds the frame last releases it.
 */
public final class Frame {
    private final ByteBuf data;
    private final int vnetHdrLen;

    public Frame(ByteBuf data, int vnetHdrLen) {
        if (vnetHdrLen < 0 || vnetHdrLen > data.readableBytes()) {
            throw new IllegalArgumentException("vnet header length " + vnetHdrLen + " outside frame of " + data.readableBytes());
        }
        this.data = data;
        this.vnetHdrLen = vnetHdrLen;
    }

    public static Frame of(ByteBuf ethernet) {
        return new Frame(ethernet, 0);
    }

    /** All bytes, vnet header included. */
    public ByteBuf data() {
        return data;
    }

    public int vnetHdrLen() {
        return vnetHdrLen;
    }

    /** A view of the Ethernet frame alone, sharing the buffer (no copy, no extra reference). */
    public ByteBuf ethernet() {
        return data.slice(data.readerIndex() + vnetHdrLen, data.readableBytes() - vnetHdrLen);
    }

    public int length() {
        return data.readableBytes();
    }

    /** Releases this frame's one reference; each frame is released exactly once. */
    public void release() {
        data.release();
    }
}
