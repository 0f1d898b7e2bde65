package dev.colo.proxy.frame;

import io.netty.buffer.ByteBuf;
import io.netty.channel.ChannelHandler;
import io.netty.channel.ChannelHandlerContext;
import io.netty.handler.codec.MessageToMessageEncoder;
import java.util.List;

/** Encodes a {@link Frame} in QEMU's socket framing without copying its bytes. */
@ChannelHandler.Sharable
public final class FrameEncoder extends MessageToMessageEncoder<Frame> {
    private final boolean vnetHdr;

    public FrameEncoder(boolean vnetHdr) {
        super(Frame.class);
        this.vnetHdr = vnetHdr;
    }

    @Override
    protected void encode(ChannelHandlerContext ctx, Frame frame, List<Object> out) {
        ByteBuf header = ctx.alloc().buffer(vnetHdr ? 8 : 4);
        ByteBuf data = frame.data();
        if (!vnetHdr && frame.vnetHdrLen() > 0) {
            data.skipBytes(frame.vnetHdrLen()); // this socket speaks plain frames
        }
        header.writeInt(data.readableBytes());
        if (vnetHdr) {
            header.writeInt(frame.vnetHdrLen());
        }
        out.add(header);
        // The frame's own reference passes to the outbound buffer: MessageToMessageEncoder would
        // release the Frame object, which is not reference counted, so nothing else releases it.
        out.add(data);
    }
}
