package dev.colo.checkpoint.disk;

import io.netty.buffer.ByteBuf;
import io.netty.buffer.Unpooled;
import io.netty.channel.ChannelHandlerContext;
import io.netty.handler.codec.ByteToMessageDecoder;
import java.util.List;

/**
 * Reads what an NBD client sends to a fixed-newstyle server: its flags, then options, then (once
 * {@link #transmission()} was called, after the export was chosen) requests. Pure framing: what a
 * message means is {@link NbdExportHandler}'s. A broken frame ends the stream with one
 * {@link NbdMessage.Violation}; the bytes after it are discarded.
 */
final class NbdDecoder extends ByteToMessageDecoder {
    private enum Phase { CLIENT_FLAGS, OPTIONS, TRANSMISSION, BROKEN }

    private Phase phase = Phase.CLIENT_FLAGS;

    /** The export was chosen: from now on the client sends requests. Called on the channel's event loop. */
    void transmission() {
        phase = Phase.TRANSMISSION;
    }

    @Override
    protected void decode(ChannelHandlerContext ctx, ByteBuf in, List<Object> out) {
        switch (phase) {
            case CLIENT_FLAGS -> {
                if (in.readableBytes() >= 4) {
                    out.add(new NbdMessage.ClientFlags(in.readInt(), Unpooled.EMPTY_BUFFER));
                    phase = Phase.OPTIONS;
                }
            }
            case OPTIONS -> option(in, out);
            case TRANSMISSION -> request(in, out);
            case BROKEN -> in.skipBytes(in.readableBytes());
        }
    }

    private void option(ByteBuf in, List<Object> out) {
        if (in.readableBytes() < 16) {
            return;
        }
        int at = in.readerIndex();
        long magic = in.getLong(at);
        if (magic != Nbd.IHAVEOPT) {
            broken(in, out, String.format("option without the IHAVEOPT magic (%016x)", magic));
            return;
        }
        int option = in.getInt(at + 8);
        long length = in.getUnsignedInt(at + 12);
        if (length > Nbd.MAX_OPTION) {
            broken(in, out, "option " + option + " of " + length + " bytes (at most " + Nbd.MAX_OPTION + ")");
            return;
        }
        if (in.readableBytes() < 16 + length) {
            return;
        }
        in.skipBytes(16);
        out.add(new NbdMessage.Option(option, in.readRetainedSlice((int) length)));
    }

    private void request(ByteBuf in, List<Object> out) {
        if (in.readableBytes() < 28) {
            return;
        }
        int at = in.readerIndex();
        int magic = in.getInt(at);
        if (magic != Nbd.REQUEST_MAGIC) {
            broken(in, out, String.format("request without the request magic (%08x)", magic));
            return;
        }
        int flags = in.getUnsignedShort(at + 4);
        int type = in.getUnsignedShort(at + 6);
        long handle = in.getLong(at + 8);
        long offset = in.getLong(at + 16);
        long length = in.getUnsignedInt(at + 24);
        if (type == Nbd.CMD_WRITE) {
            if (length > Nbd.MAX_REQUEST) {
                broken(in, out, "write of " + length + " bytes (at most " + Nbd.MAX_REQUEST + ")");
                return;
            }
            if (in.readableBytes() < 28 + length) {
                return;
            }
            in.skipBytes(28);
            out.add(new NbdMessage.Request(flags, type, handle, offset, length, in.readRetainedSlice((int) length)));
            return;
        }
        in.skipBytes(28);
        out.add(new NbdMessage.Request(flags, type, handle, offset, length, Unpooled.EMPTY_BUFFER));
    }

    private void broken(ByteBuf in, List<Object> out, String what) {
        phase = Phase.BROKEN;
        in.skipBytes(in.readableBytes());
        out.add(new NbdMessage.Violation(what, Unpooled.EMPTY_BUFFER));
    }
}
