package dev.colo.proxy.frame;

import static org.assertj.core.api.Assertions.assertThat;

import dev.colo.testkit.Seeds;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.Unpooled;
import io.netty.channel.embedded.EmbeddedChannel;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.Test;

/** The framing codec under fragmented input, bad lengths and vnet headers. */
class FrameCodecTest {
    static byte[] frame(int len, int fill) {
        byte[] b = new byte[len];
        java.util.Arrays.fill(b, (byte) fill);
        return b;
    }

    static ByteBuf wire(boolean vnet, byte[]... frames) {
        ByteBuf b = Unpooled.buffer();
        for (byte[] f : frames) {
            b.writeInt(f.length);
            if (vnet) {
                b.writeInt(Math.min(10, f.length));
            }
            b.writeBytes(f);
        }
        return b;
    }

    /** Feeds {@code all} in random fragments and collects the decoded frames. */
    static List<Frame> feed(EmbeddedChannel ch, ByteBuf all, Random rnd) {
        while (all.isReadable()) {
            int n = Math.min(all.readableBytes(), 1 + rnd.nextInt(7));
            ch.writeInbound(all.readRetainedSlice(n));
        }
        all.release();
        List<Frame> out = new ArrayList<>();
        for (Frame f; (f = ch.readInbound()) != null; ) {
            out.add(f);
        }
        return out;
    }

    @Test
    void decodesFramesFedInRandomFragments() {
        Seeds.forEach(50, 3, seed -> {
            FrameErrors errors = new FrameErrors();
            EmbeddedChannel ch = new EmbeddedChannel(new FrameDecoder(false, FrameDecoder.DEFAULT_MAX_FRAME, errors, "test"));
            List<Frame> got = feed(ch, wire(false, frame(60, 1), frame(1514, 2), frame(42, 3)), new Random(seed));
            assertThat(got).extracting(Frame::length).containsExactly(60, 1514, 42);
            assertThat(got.get(1).data().getByte(0)).isEqualTo((byte) 2);
            got.forEach(Frame::release);
            assertThat(ch.finish()).isFalse();
        });
    }

    @Test
    void zeroLengthIsCountedAndSkipped() {
        // QEMU 7.2's colo-compare aborts the whole process on this.
        FrameErrors errors = new FrameErrors();
        EmbeddedChannel ch = new EmbeddedChannel(new FrameDecoder(false, FrameDecoder.DEFAULT_MAX_FRAME, errors, "test"));
        List<Frame> got = feed(ch, wire(false, frame(60, 1), new byte[0], frame(60, 2)), new Random(1));
        assertThat(got).hasSize(2);
        assertThat(errors.zeroLength.sum()).isEqualTo(1);
        got.forEach(Frame::release);
        assertThat(ch.isActive()).isTrue();
        ch.finish();
    }

    @Test
    void oversizeIsDiscardedAndReadingGoesOn() {
        // QEMU 7.2's colo-compare stops reading the socket for good after this.
        FrameErrors errors = new FrameErrors();
        EmbeddedChannel ch = new EmbeddedChannel(new FrameDecoder(false, 1600, errors, "test"));
        List<Frame> got = feed(ch, wire(false, frame(60, 1), frame(5000, 9), frame(60, 2)), new Random(2));
        assertThat(got).extracting(Frame::length).containsExactly(60, 60);
        assertThat(got.get(1).data().getByte(0)).isEqualTo((byte) 2);
        assertThat(errors.oversize.sum()).isEqualTo(1);
        got.forEach(Frame::release);
        ch.finish();
    }

    @Test
    void vnetHeadersRoundTripAndImpossibleLengthsAreSkipped() {
        FrameErrors errors = new FrameErrors();
        EmbeddedChannel ch = new EmbeddedChannel(new FrameDecoder(true, FrameDecoder.DEFAULT_MAX_FRAME, errors, "test"), new FrameEncoder(true));
        ByteBuf in = wire(true, frame(70, 5));
        in.writeInt(20).writeInt(99).writeBytes(new byte[20]); // vnet header longer than the frame
        List<Frame> got = feed(ch, in, new Random(3));
        assertThat(got).singleElement().satisfies(f -> {
            assertThat(f.vnetHdrLen()).isEqualTo(10);
            assertThat(f.ethernet().readableBytes()).isEqualTo(60);
        });
        assertThat(errors.badVnetHeader.sum()).isEqualTo(1);
        ch.writeOutbound(got.get(0));
        ByteBuf header = ch.readOutbound();
        ByteBuf body = ch.readOutbound();
        assertThat(header.readInt()).isEqualTo(70);
        assertThat(header.readInt()).isEqualTo(10);
        assertThat(body.readableBytes()).isEqualTo(70);
        header.release();
        body.release();
        ch.finish();
    }

    @Test
    void encoderStripsVnetHeaderForAPlainSocket() {
        EmbeddedChannel ch = new EmbeddedChannel(new FrameEncoder(false));
        ByteBuf data = Unpooled.buffer().writeBytes(frame(10, 7)).writeBytes(frame(60, 8));
        ch.writeOutbound(new Frame(data, 10));
        ByteBuf header = ch.readOutbound();
        ByteBuf body = ch.readOutbound();
        assertThat(header.readInt()).isEqualTo(60);
        assertThat(body.getByte(body.readerIndex())).isEqualTo((byte) 8);
        header.release();
        body.release();
        ch.finish();
    }

    @Test
    void randomBytesNeverBreakTheDecoder() {
        Seeds.forEach(200, 11, seed -> {
            Random rnd = new Random(seed);
            FrameErrors errors = new FrameErrors();
            EmbeddedChannel ch = new EmbeddedChannel(new FrameDecoder(rnd.nextBoolean(), 2048, errors, "fuzz"));
            byte[] junk = new byte[rnd.nextInt(5000)];
            rnd.nextBytes(junk);
            List<Frame> got = feed(ch, Unpooled.wrappedBuffer(junk), rnd);
            got.forEach(Frame::release);
            assertThat(ch.isActive()).isTrue();
            ch.finishAndReleaseAll();
        });
    }
}
