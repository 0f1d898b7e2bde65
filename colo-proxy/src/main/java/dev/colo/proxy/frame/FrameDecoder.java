package dev.colo.proxy.frame;

import io.netty.buffer.ByteBuf;
import io.netty.channel.ChannelHandlerContext;
import io.netty.handler.codec.ByteToMessageDecoder;
import java.util.List;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Decodes QEMU's socket framing: be32 length, then (with vnet headers) be32 vnet header length, then
 * {@code length} bytes whose first {@code vnetHdrLen} are the vnet header. Bad lengths are counted
 * and skipped, never thrown: a zero length is dropped, an oversize frame is discarded as it streams
 * in (nothing buffered), and reading goes on with the next frame.
 */
public final class FrameDecoder extends ByteToMessageDecoder {
    private static final Logger log = LoggerFactory.getLogger(FrameDecoder.class);
    /** QEMU's NET_BUFSIZE: the largest frame a socket netdev sends. */
    public static final int DEFAULT_MAX_FRAME = 4096 + 65536;

    private final boolean vnetHdr;
    private final int maxFrame;
    private final FrameErrors errors;
    private final String socketName;
    private long discarding;

    public FrameDecoder(boolean vnetHdr, int maxFrame, FrameErrors errors, String socketName) {
        this.vnetHdr = vnetHdr;
        this.maxFrame = maxFrame;
        this.errors = errors;
        this.socketName = socketName;
    }

    @Override
    protected void decode(ChannelHandlerContext ctx, ByteBuf in, List<Object> out) {
        while (true) {
            if (discarding > 0) {
                int n = (int) Math.min(discarding, in.readableBytes());
                in.skipBytes(n);
                discarding -= n;
                if (discarding > 0) {
                    return;
                }
            }
            int header = vnetHdr ? 8 : 4;
            if (in.readableBytes() < header) {
                return;
            }
            int start = in.readerIndex();
            long len = in.getUnsignedInt(start);
            if (len == 0) {
                in.skipBytes(header);
                errors.zeroLength.increment();
                log.atWarn().addKeyValue("socket", socketName).addKeyValue("count", errors.zeroLength.sum())
                        .log("zero-length frame skipped");
                continue;
            }
            if (len > maxFrame) {
                in.skipBytes(header);
                discarding = len;
                errors.oversize.increment();
                log.atWarn().addKeyValue("socket", socketName).addKeyValue("length", len).addKeyValue("max", maxFrame)
                        .log("oversize frame discarded, reading continues");
                continue;
            }
            if (in.readableBytes() < header + len) {
                return;
            }
            int vnetLen = vnetHdr ? in.getInt(start + 4) : 0;
            if (vnetLen < 0 || vnetLen > len) {
                in.skipBytes(header + (int) len);
                errors.badVnetHeader.increment();
                log.atWarn().addKeyValue("socket", socketName).addKeyValue("vnet_hdr_len", vnetLen).addKeyValue("length", len)
                        .log("frame with impossible vnet header length skipped");
                continue;
            }
            in.skipBytes(header);
            ByteBuf data = in.readRetainedSlice((int) len);
            errors.frames.increment();
            out.add(new Frame(data, vnetLen));
        }
    }
}
