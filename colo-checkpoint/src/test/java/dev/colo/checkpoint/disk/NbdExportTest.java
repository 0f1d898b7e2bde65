package dev.colo.checkpoint.disk;

import static org.assertj.core.api.Assertions.assertThat;

import dev.colo.testkit.Seeds;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.Unpooled;
import io.netty.channel.embedded.EmbeddedChannel;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.Test;

/** The NBD export as QEMU's NBD client drives it, fed in random fragments, under paranoid leak detection. */
class NbdExportTest {
    static final long SIZE = 1 << 20;

    /** Records what reached the target. */
    static final class Recording implements DiskWriteTarget {
        final List<DiskWriteLog.Extent> writes = new ArrayList<>();
        int flushes;
        boolean writable = true;
        String disconnected;

        @Override
        public int write(long offset, ByteBuf data) {
            byte[] b = new byte[data.readableBytes()];
            data.getBytes(data.readerIndex(), b);
            writes.add(DiskWriteLog.Extent.of(offset, b));
            return 0;
        }

        @Override
        public int writeZeroes(long offset, long length) {
            writes.add(DiskWriteLog.Extent.zeroes(offset, length));
            return 0;
        }

        @Override
        public int flush() {
            flushes++;
            return 0;
        }

        @Override
        public boolean writable() {
            return writable;
        }

        @Override
        public void disconnected(String why) {
            disconnected = why;
        }
    }

    static EmbeddedChannel export(Recording target) {
        NbdDecoder decoder = new NbdDecoder();
        return new EmbeddedChannel(decoder, new NbdExportHandler("vdb", SIZE, decoder, target));
    }

    static void option(ByteBuf b, int option, byte[] data) {
        b.writeLong(Nbd.IHAVEOPT).writeInt(option).writeInt(data.length).writeBytes(data);
    }

    static byte[] go(String name, int... infos) {
        byte[] n = name.getBytes(StandardCharsets.UTF_8);
        ByteBuf b = Unpooled.buffer();
        b.writeInt(n.length).writeBytes(n).writeShort(infos.length);
        for (int i : infos) {
            b.writeShort(i);
        }
        byte[] out = new byte[b.readableBytes()];
        b.readBytes(out);
        b.release();
        return out;
    }

    static void request(ByteBuf b, int type, long handle, long offset, long length, byte[] data) {
        b.writeInt(Nbd.REQUEST_MAGIC).writeShort(0).writeShort(type).writeLong(handle).writeLong(offset).writeInt((int) length);
        if (data != null) {
            b.writeBytes(data);
        }
    }

    static void feed(EmbeddedChannel ch, ByteBuf all, Random rnd) {
        while (all.isReadable()) {
            int n = Math.min(all.readableBytes(), rnd.nextInt(4) == 0 ? 1 + rnd.nextInt(40) : 1 + rnd.nextInt(8192));
            ch.writeInbound(all.readRetainedSlice(n));
        }
        all.release();
    }

    static ByteBuf output(EmbeddedChannel ch) {
        ByteBuf out = Unpooled.buffer();
        for (ByteBuf b; (b = ch.readOutbound()) != null; ) {
            out.writeBytes(b);
            b.release();
        }
        return out;
    }

    /** Reads one option reply and returns its type; its data is skipped into {@code data} when given. */
    static int optionReply(ByteBuf in, int option, ByteBuf data) {
        assertThat(in.readLong()).isEqualTo(Nbd.OPTION_REPLY_MAGIC);
        assertThat(in.readInt()).isEqualTo(option);
        int type = in.readInt();
        int length = in.readInt();
        if (data != null) {
            data.writeBytes(in, length);
        } else {
            in.skipBytes(length);
        }
        return type;
    }

    @Test
    void theLargestWriteColoAnnouncesFitsALinkFrameEvenIncompressible() {
        // One write can be a disk batch of its own; a frame over the link's limit would close the link.
        assertThat(2L * Nbd.MAX_REQUEST).isLessThanOrEqualTo(dev.colo.checkpoint.link.LinkProtocol.MAX_FRAME);
    }

    @Test
    void negotiatesLikeQemuThenTakesWritesZeroesAndFlushesInOrder() {
        Seeds.forEach(40, 11, seed -> {
            Random rnd = new Random(seed);
            Recording target = new Recording();
            EmbeddedChannel ch = export(target);
            ByteBuf greeting = output(ch);
            assertThat(greeting.readLong()).isEqualTo(Nbd.NBDMAGIC);
            assertThat(greeting.readLong()).isEqualTo(Nbd.IHAVEOPT);
            assertThat(greeting.readUnsignedShort()).isEqualTo(Nbd.FLAG_FIXED_NEWSTYLE | Nbd.FLAG_NO_ZEROES);
            greeting.release();

            ByteBuf in = Unpooled.buffer();
            in.writeInt(Nbd.FLAG_FIXED_NEWSTYLE | Nbd.FLAG_NO_ZEROES);
            option(in, 8, new byte[0]); // NBD_OPT_STRUCTURED_REPLY: QEMU asks first and copes with a refusal
            option(in, Nbd.OPT_GO, go("vdb", Nbd.INFO_BLOCK_SIZE));
            feed(ch, in, rnd);
            ByteBuf replies = output(ch);
            assertThat(optionReply(replies, 8, null)).isEqualTo(Nbd.REP_ERR_UNSUP);
            ByteBuf info = Unpooled.buffer();
            assertThat(optionReply(replies, Nbd.OPT_GO, info)).isEqualTo(Nbd.REP_INFO);
            assertThat(info.readUnsignedShort()).isEqualTo(Nbd.INFO_EXPORT);
            assertThat(info.readLong()).isEqualTo(SIZE);
            int flags = info.readUnsignedShort();
            assertThat(flags & Nbd.TFLAG_SEND_WRITE_ZEROES).isNotZero();
            assertThat(flags & Nbd.TFLAG_SEND_FLUSH).isNotZero();
            info.release();
            assertThat(optionReply(replies, Nbd.OPT_GO, null)).isEqualTo(Nbd.REP_INFO);
            assertThat(optionReply(replies, Nbd.OPT_GO, null)).isEqualTo(Nbd.REP_ACK);
            assertThat(replies.isReadable()).isFalse();
            replies.release();

            in = Unpooled.buffer();
            List<DiskWriteLog.Extent> sent = new ArrayList<>();
            List<Integer> expectedErrors = new ArrayList<>();
            int n = 5 + rnd.nextInt(20);
            for (int i = 0; i < n; i++) {
                int kind = rnd.nextInt(10);
                long offset = rnd.nextInt((int) SIZE - 70000);
                if (kind < 6) {
                    byte[] data = new byte[1 + rnd.nextInt(65536)];
                    rnd.nextBytes(data);
                    request(in, Nbd.CMD_WRITE, i, offset, data.length, data);
                    sent.add(DiskWriteLog.Extent.of(offset, data));
                    expectedErrors.add(0);
                } else if (kind < 8) {
                    request(in, rnd.nextBoolean() ? Nbd.CMD_WRITE_ZEROES : Nbd.CMD_TRIM, i, offset, 4096, null);
                    sent.add(DiskWriteLog.Extent.zeroes(offset, 4096));
                    expectedErrors.add(0);
                } else if (kind == 8) {
                    request(in, Nbd.CMD_FLUSH, i, 0, 0, null);
                    expectedErrors.add(0);
                } else {
                    request(in, Nbd.CMD_WRITE, i, SIZE - 10, 20, new byte[20]); // past the end
                    expectedErrors.add(Nbd.ENOSPC);
                }
            }
            feed(ch, in, rnd);
            ByteBuf out = output(ch);
            for (int i = 0; i < n; i++) {
                assertThat(out.readInt()).isEqualTo(Nbd.SIMPLE_REPLY_MAGIC);
                assertThat(out.readInt()).as("error of request %d", i).isEqualTo(expectedErrors.get(i));
                assertThat(out.readLong()).isEqualTo(i);
            }
            assertThat(out.isReadable()).isFalse();
            out.release();
            assertThat(target.writes).hasSameSizeAs(sent);
            for (int i = 0; i < sent.size(); i++) {
                assertThat(target.writes.get(i).offset()).isEqualTo(sent.get(i).offset());
                assertThat(target.writes.get(i).length()).isEqualTo(sent.get(i).length());
                assertThat(target.writes.get(i).data()).isEqualTo(sent.get(i).data());
            }
            assertThat(target.disconnected).isNull();
            ch.finishAndReleaseAll();
        });
    }

    @Test
    void oldStyleExportNameOptionAlsoWorks() {
        Recording target = new Recording();
        EmbeddedChannel ch = export(target);
        output(ch).release();
        ByteBuf in = Unpooled.buffer();
        in.writeInt(Nbd.FLAG_FIXED_NEWSTYLE); // without NO_ZEROES: 124 zero bytes follow the export data
        option(in, Nbd.OPT_EXPORT_NAME, "vdb".getBytes(StandardCharsets.UTF_8));
        ch.writeInbound(in);
        ByteBuf out = output(ch);
        assertThat(out.readLong()).isEqualTo(SIZE);
        out.readUnsignedShort();
        assertThat(out.readableBytes()).isEqualTo(124);
        out.release();
        in = Unpooled.buffer();
        request(in, Nbd.CMD_WRITE, 7, 0, 3, new byte[] {1, 2, 3});
        ch.writeInbound(in);
        out = output(ch);
        assertThat(out.getInt(4)).isZero();
        out.release();
        assertThat(target.writes).hasSize(1);
        ch.finishAndReleaseAll();
    }

    @Test
    void unknownExportIsRefusedAndAReadIsAnError() {
        Recording target = new Recording();
        EmbeddedChannel ch = export(target);
        output(ch).release();
        ByteBuf in = Unpooled.buffer();
        in.writeInt(Nbd.FLAG_FIXED_NEWSTYLE | Nbd.FLAG_NO_ZEROES);
        option(in, Nbd.OPT_GO, go("vda"));
        option(in, Nbd.OPT_GO, go(""));
        request(in, Nbd.CMD_READ, 1, 0, 512, null);
        ch.writeInbound(in);
        ByteBuf out = output(ch);
        assertThat(optionReply(out, Nbd.OPT_GO, null)).isEqualTo(Nbd.REP_ERR_UNKNOWN);
        assertThat(optionReply(out, Nbd.OPT_GO, null)).isEqualTo(Nbd.REP_INFO);
        assertThat(optionReply(out, Nbd.OPT_GO, null)).isEqualTo(Nbd.REP_ACK);
        assertThat(out.readInt()).isEqualTo(Nbd.SIMPLE_REPLY_MAGIC);
        assertThat(out.readInt()).isEqualTo(Nbd.EIO);
        out.release();
        assertThat(ch.isOpen()).isTrue();
        ch.finishAndReleaseAll();
    }

    @Test
    void aBrokenRequestEndsTheConnectionAndTellsTheTarget() {
        Recording target = new Recording();
        EmbeddedChannel ch = export(target);
        output(ch).release();
        ByteBuf in = Unpooled.buffer();
        in.writeInt(Nbd.FLAG_FIXED_NEWSTYLE | Nbd.FLAG_NO_ZEROES);
        option(in, Nbd.OPT_GO, go("vdb"));
        in.writeInt(0xdeadbeef).writeZero(24); // no request magic
        request(in, Nbd.CMD_WRITE, 2, 0, 3, new byte[] {1, 2, 3});
        ch.writeInbound(in);
        ch.runPendingTasks();
        assertThat(target.disconnected).contains("request magic");
        assertThat(target.writes).isEmpty();
        assertThat(ch.isOpen()).isFalse();
        ch.finishAndReleaseAll();
    }

    @Test
    void anOversizedOptionOrWriteIsAViolationNotAnAllocation() {
        for (boolean write : new boolean[] {false, true}) {
            Recording target = new Recording();
            EmbeddedChannel ch = export(target);
            output(ch).release();
            ByteBuf in = Unpooled.buffer();
            in.writeInt(Nbd.FLAG_FIXED_NEWSTYLE | Nbd.FLAG_NO_ZEROES);
            if (write) {
                option(in, Nbd.OPT_GO, go("vdb"));
                in.writeInt(Nbd.REQUEST_MAGIC).writeShort(0).writeShort(Nbd.CMD_WRITE).writeLong(1).writeLong(0).writeInt(-1);
            } else {
                in.writeLong(Nbd.IHAVEOPT).writeInt(Nbd.OPT_GO).writeInt(Integer.MAX_VALUE);
            }
            ch.writeInbound(in);
            ch.runPendingTasks();
            assertThat(target.disconnected).as("write=%s", write).contains("at most");
            assertThat(ch.isOpen()).isFalse();
            ch.finishAndReleaseAll();
        }
    }

    @Test
    void stopsReadingWhileTheTargetCannotTakeMore() {
        Recording target = new Recording();
        EmbeddedChannel ch = export(target);
        output(ch).release();
        ByteBuf in = Unpooled.buffer();
        in.writeInt(Nbd.FLAG_FIXED_NEWSTYLE | Nbd.FLAG_NO_ZEROES);
        option(in, Nbd.OPT_GO, go("vdb"));
        target.writable = false;
        ch.writeInbound(in);
        assertThat(ch.config().isAutoRead()).isFalse();
        ch.advanceTimeBy(NbdExportHandler.RECHECK_MS * 3, java.util.concurrent.TimeUnit.MILLISECONDS);
        ch.runScheduledPendingTasks();
        assertThat(ch.config().isAutoRead()).as("still full").isFalse();
        target.writable = true;
        ch.advanceTimeBy(NbdExportHandler.RECHECK_MS, java.util.concurrent.TimeUnit.MILLISECONDS);
        ch.runScheduledPendingTasks();
        assertThat(ch.config().isAutoRead()).isTrue();
        ch.finishAndReleaseAll();
    }
}
