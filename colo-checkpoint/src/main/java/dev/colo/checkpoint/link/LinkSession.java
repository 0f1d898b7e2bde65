package dev.colo.checkpoint.link;

import dev.colo.checkpoint.link.proto.Envelope;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.ByteBufOutputStream;
import io.netty.channel.Channel;
import java.io.IOException;
import java.io.UncheckedIOException;

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
        // Serialized here, not in the pipeline: Netty counts a ByteBuf's size towards the water mark
        // at once, while an Envelope would count as zero until the event loop encoded it, and a fast
        // producer could then queue without bound.
        ByteBuf buf = channel.alloc().buffer(e.getSerializedSize());
        try {
            e.writeTo(new ByteBufOutputStream(buf));
        } catch (IOException ex) {
            buf.release();
            throw new UncheckedIOException("cannot serialize a link message", ex);
        }
        channel.writeAndFlush(buf, channel.voidPromise());
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
