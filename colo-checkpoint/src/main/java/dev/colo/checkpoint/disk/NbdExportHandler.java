package dev.colo.checkpoint.disk;

import io.netty.buffer.ByteBuf;
import io.netty.channel.ChannelHandlerContext;
import io.netty.channel.ChannelInboundHandlerAdapter;
import java.nio.charset.StandardCharsets;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Serves one writable NBD export of a fixed size to one client (QEMU's mirror job): the greeting,
 * the option haggling (NBD_OPT_GO, NBD_OPT_INFO, NBD_OPT_EXPORT_NAME, NBD_OPT_LIST, NBD_OPT_ABORT;
 * anything else is unsupported, including structured replies and TLS), then simple replies to
 * writes, write-zeroes, trims and flushes, which go to a {@link DiskWriteTarget}. Reads are refused:
 * a mirror only writes its target. While the target is not writable the connection stops reading,
 * so the guest's writes wait instead of colo buffering without bound.
 */
final class NbdExportHandler extends ChannelInboundHandlerAdapter {
    private static final Logger log = LoggerFactory.getLogger(NbdExportHandler.class);
    private static final int TRANSMISSION_FLAGS = Nbd.TFLAG_HAS_FLAGS | Nbd.TFLAG_SEND_FLUSH | Nbd.TFLAG_SEND_FUA | Nbd.TFLAG_SEND_TRIM
            | Nbd.TFLAG_SEND_WRITE_ZEROES;

    private final String export;
    private final long size;
    private final NbdDecoder decoder;
    private final DiskWriteTarget target;
    private boolean noZeroes;
    private boolean over;

    NbdExportHandler(String export, long size, NbdDecoder decoder, DiskWriteTarget target) {
        this.export = export;
        this.size = size;
        this.decoder = decoder;
        this.target = target;
    }

    @Override
    public void channelActive(ChannelHandlerContext ctx) {
        ByteBuf hello = ctx.alloc().buffer(18);
        hello.writeLong(Nbd.NBDMAGIC).writeLong(Nbd.IHAVEOPT).writeShort(Nbd.FLAG_FIXED_NEWSTYLE | Nbd.FLAG_NO_ZEROES);
        ctx.writeAndFlush(hello);
        ctx.fireChannelActive();
    }

    /** How often a connection that stopped reading asks its target again. */
    static final long RECHECK_MS = 2;

    @Override
    public void channelRead(ChannelHandlerContext ctx, Object msg) {
        if (!(msg instanceof NbdMessage m)) {
            ctx.fireChannelRead(msg);
            return;
        }
        try {
            if (m instanceof NbdMessage.ClientFlags f) {
                noZeroes = (f.flags() & Nbd.FLAG_NO_ZEROES) != 0;
            } else if (m instanceof NbdMessage.Option o) {
                option(ctx, o.option(), o.data());
            } else if (m instanceof NbdMessage.Request r) {
                request(ctx, r);
            } else if (m instanceof NbdMessage.Violation v) {
                end(ctx, "protocol violation: " + v.what());
            }
        } finally {
            m.data().release();
        }
    }

    @Override
    public void channelReadComplete(ChannelHandlerContext ctx) {
        ctx.flush();
        if (!target.writable() && ctx.channel().config().isAutoRead()) {
            ctx.channel().config().setAutoRead(false);
            recheck(ctx);
        }
    }

    /** While the target is full, asks it again every {@link #RECHECK_MS} on the event loop; reads on once it can take more. */
    private void recheck(ChannelHandlerContext ctx) {
        ctx.executor().schedule(() -> {
            if (!ctx.channel().isActive()) {
                return;
            }
            if (target.writable()) {
                ctx.channel().config().setAutoRead(true);
                ctx.read();
            } else {
                recheck(ctx);
            }
        }, RECHECK_MS, java.util.concurrent.TimeUnit.MILLISECONDS);
    }

    private void option(ChannelHandlerContext ctx, int option, ByteBuf data) {
        switch (option) {
            case Nbd.OPT_EXPORT_NAME -> {
                String name = data.toString(StandardCharsets.UTF_8);
                if (!name.isEmpty() && !name.equals(export)) {
                    // The protocol has no error reply for this option: the server closes.
                    end(ctx, "client asked for export '" + name + "', this one is '" + export + "'");
                    return;
                }
                ByteBuf b = ctx.alloc().buffer(134);
                b.writeLong(size).writeShort(TRANSMISSION_FLAGS);
                if (!noZeroes) {
                    b.writeZero(124);
                }
                ctx.write(b);
                decoder.transmission();
            }
            case Nbd.OPT_GO, Nbd.OPT_INFO -> go(ctx, option, data);
            case Nbd.OPT_LIST -> {
                byte[] name = export.getBytes(StandardCharsets.UTF_8);
                ByteBuf b = ctx.alloc().buffer(4 + name.length);
                b.writeInt(name.length).writeBytes(name);
                reply(ctx, option, Nbd.REP_SERVER, b);
                reply(ctx, option, Nbd.REP_ACK, null);
            }
            case Nbd.OPT_ABORT -> {
                reply(ctx, option, Nbd.REP_ACK, null);
                end(ctx, "client aborted the negotiation");
            }
            default -> reply(ctx, option, Nbd.REP_ERR_UNSUP, null);
        }
    }

    private void go(ChannelHandlerContext ctx, int option, ByteBuf data) {
        if (data.readableBytes() < 6) {
            reply(ctx, option, Nbd.REP_ERR_INVALID, null);
            return;
        }
        long nameLength = data.readUnsignedInt();
        if (nameLength > data.readableBytes() - 2) {
            reply(ctx, option, Nbd.REP_ERR_INVALID, null);
            return;
        }
        String name = data.readCharSequence((int) nameLength, StandardCharsets.UTF_8).toString();
        int requests = data.readUnsignedShort();
        if (data.readableBytes() != 2 * requests) {
            reply(ctx, option, Nbd.REP_ERR_INVALID, null);
            return;
        }
        if (!name.isEmpty() && !name.equals(export)) {
            reply(ctx, option, Nbd.REP_ERR_UNKNOWN, null);
            return;
        }
        boolean blockSize = false;
        for (int i = 0; i < requests; i++) {
            blockSize |= data.readUnsignedShort() == Nbd.INFO_BLOCK_SIZE;
        }
        ByteBuf info = ctx.alloc().buffer(12);
        info.writeShort(Nbd.INFO_EXPORT).writeLong(size).writeShort(TRANSMISSION_FLAGS);
        reply(ctx, option, Nbd.REP_INFO, info);
        if (blockSize) {
            ByteBuf sizes = ctx.alloc().buffer(14);
            sizes.writeShort(Nbd.INFO_BLOCK_SIZE).writeInt(1).writeInt(4096).writeInt(Nbd.MAX_REQUEST);
            reply(ctx, option, Nbd.REP_INFO, sizes);
        }
        reply(ctx, option, Nbd.REP_ACK, null);
        if (option == Nbd.OPT_GO) {
            decoder.transmission();
        }
    }

    private void reply(ChannelHandlerContext ctx, int option, int type, ByteBuf data) {
        int length = data == null ? 0 : data.readableBytes();
        ByteBuf b = ctx.alloc().buffer(20);
        b.writeLong(Nbd.OPTION_REPLY_MAGIC).writeInt(option).writeInt(type).writeInt(length);
        ctx.write(b);
        if (data != null) {
            ctx.write(data);
        }
    }

    private void request(ChannelHandlerContext ctx, NbdMessage.Request r) {
        int error;
        switch (r.type()) {
            case Nbd.CMD_WRITE -> error = inBounds(r) ? target.write(r.offset(), r.data()) : Nbd.ENOSPC;
            case Nbd.CMD_WRITE_ZEROES, Nbd.CMD_TRIM -> error = inBounds(r) ? target.writeZeroes(r.offset(), r.length()) : Nbd.ENOSPC;
            case Nbd.CMD_FLUSH -> error = target.flush();
            case Nbd.CMD_DISC -> {
                end(ctx, "client disconnected");
                return;
            }
            default -> {
                // A mirror never reads its target; colo does not hold the disk's contents here.
                log.atWarn().addKeyValue("export", export).addKeyValue("command", Nbd.commandName(r.type())).addKeyValue("offset", r.offset())
                        .addKeyValue("length", r.length()).log("NBD command refused: the mirror target serves writes only");
                error = r.type() == Nbd.CMD_READ ? Nbd.EIO : Nbd.ENOTSUP;
            }
        }
        ByteBuf b = ctx.alloc().buffer(16);
        b.writeInt(Nbd.SIMPLE_REPLY_MAGIC).writeInt(error).writeLong(r.handle());
        ctx.write(b);
    }

    private boolean inBounds(NbdMessage.Request r) {
        return r.offset() >= 0 && r.offset() <= size && r.length() <= size - r.offset();
    }

    private void end(ChannelHandlerContext ctx, String why) {
        if (!over) {
            over = true;
            target.disconnected(why);
        }
        ctx.writeAndFlush(io.netty.buffer.Unpooled.EMPTY_BUFFER).addListener(f -> ctx.close());
    }

    @Override
    public void channelInactive(ChannelHandlerContext ctx) {
        if (!over) {
            over = true;
            target.disconnected("connection closed");
        }
        ctx.fireChannelInactive();
    }

    @Override
    public void exceptionCaught(ChannelHandlerContext ctx, Throwable cause) {
        log.atWarn().addKeyValue("export", export).addKeyValue("reason", String.valueOf(cause)).log("NBD connection failed");
        end(ctx, "connection failed: " + cause);
    }
}
