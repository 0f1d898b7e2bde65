package dev.colo.checkpoint.link;

import dev.colo.checkpoint.link.proto.Envelope;
import io.netty.channel.Channel;

/** A verified connection to the peer daemon. */
public final class LinkSession {
    private final Channel channel;
    private final String peerNode;

    LinkSession(Channel channel, String peerNode) {
        this.channel = channel;
        this.peerNode = peerNode;
    }

    public String peerNode() {
        return peerNode;
    }

    /**
     * Sends a message. Returns false when the peer is not keeping up (the outbound buffer passed its
     * high-water mark): callers must stop producing until {@link #writable()} again, never buffer
     * without bound.
     */
    public boolean send(Envelope e) {
        channel.writeAndFlush(e, channel.voidPromise());
        return channel.isWritable();
    }

    public boolean writable() {
        return channel.isWritable();
    }

    public boolean open() {
        return channel.isActive();
    }

    public void close() {
        channel.close();
    }
}
