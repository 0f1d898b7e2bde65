package dev.colo.proxy.compare;

import static dev.colo.proxy.packet.PacketView.TCP_ACK;
import static dev.colo.proxy.packet.PacketView.TCP_FIN;
import static dev.colo.proxy.packet.PacketView.TCP_SYN;
import static org.assertj.core.api.Assertions.assertThat;

import dev.colo.proxy.Frames;
import dev.colo.proxy.frame.Frame;
import dev.colo.testkit.Seeds;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.Test;

/** Seeded random cases (plain JUnit; the seed is printed on failure). */
class ComparatorPropertyTest {

    /** One side's frames for one connection, in the order that side sent them. */
    static List<Frame> stream(Frames f, Random rnd, int port, long isn, byte[] body, boolean retransmit) {
        List<Frame> out = new ArrayList<>();
        out.add(f.tcp(80, port, isn, 1001, TCP_SYN | TCP_ACK, new byte[0]));
        int off = 0;
        while (off < body.length) {
            int n = Math.min(body.length - off, 1 + rnd.nextInt(1460));
            out.add(f.tcp(80, port, isn + 1 + off, 1001, TCP_ACK, Arrays.copyOfRange(body, off, off + n)));
            if (retransmit && rnd.nextInt(5) == 0) {
                out.add(f.tcp(80, port, isn + 1 + off, 1001, TCP_ACK, Arrays.copyOfRange(body, off, off + n)));
            }
            if (rnd.nextInt(4) == 0) {
                out.add(f.tcp(80, port, isn + 1 + off + n, 1001 + rnd.nextInt(100), TCP_ACK, new byte[0]));
            }
            off += n;
        }
        out.add(f.tcp(80, port, isn + 1 + body.length, 1001, TCP_ACK | TCP_FIN, new byte[0]));
        return out;
    }

    /** Feeds both sides' frames interleaved at random, keeping each side's own order. */
    static void interleave(Comparator cmp, Random rnd, List<List<Frame>> primary, List<List<Frame>> secondary, long now) {
        List<List<Frame>> queues = new ArrayList<>();
        List<Boolean> sides = new ArrayList<>();
        for (List<Frame> q : primary) {
            queues.add(new ArrayList<>(q));
            sides.add(true);
        }
        for (List<Frame> q : secondary) {
            queues.add(new ArrayList<>(q));
            sides.add(false);
        }
        while (queues.stream().anyMatch(q -> !q.isEmpty())) {
            int i = rnd.nextInt(queues.size());
            if (queues.get(i).isEmpty()) {
                continue;
            }
            Frame fr = queues.get(i).remove(0);
            if (sides.get(i)) {
                cmp.onPrimary(fr, now);
            } else {
                cmp.onSecondary(fr, now);
            }
        }
    }

    @Test
    void identicalStreamsUnderRandomSegmentationAndIsnsNeverTrigger() {
        Seeds.forEach(300, 1_000, seed -> {
            Random rnd = new Random(seed);
            Frames f = new Frames();
            RecordingSink sink = new RecordingSink();
            Comparator cmp = new Comparator(CompareConfig.defaults(), sink);
            int conns = 1 + rnd.nextInt(5);
            List<List<Frame>> p = new ArrayList<>();
            List<List<Frame>> s = new ArrayList<>();
            int primaryFrames = 0;
            for (int c = 0; c < conns; c++) {
                byte[] body = Frames.bytes(rnd.nextInt(20_000), rnd.nextLong());
                p.add(stream(f, rnd, 30_000 + c, rnd.nextInt() & 0xffffffffL, body, true));
                s.add(stream(f, rnd, 30_000 + c, rnd.nextInt() & 0xffffffffL, body, rnd.nextBoolean()));
                primaryFrames += p.get(c).size();
            }
            interleave(cmp, rnd, p, s, 1_000_000_000L);
            assertThat(sink.checkpoints).isEmpty();
            assertThat(sink.released).hasSize(primaryFrames);
            assertThat(cmp.stats().heldNow()).isZero();
            cmp.close();
            assertThat(f.unreleased()).isZero();
        });
    }

    @Test
    void anySingleChangedPayloadByteTriggersAtItsOffset() {
        Seeds.forEach(300, 50_000, seed -> {
            Random rnd = new Random(seed);
            Frames f = new Frames();
            RecordingSink sink = new RecordingSink();
            Comparator cmp = new Comparator(CompareConfig.defaults(), sink);
            byte[] body = Frames.bytes(1 + rnd.nextInt(20_000), rnd.nextLong());
            byte[] changed = body.clone();
            int at = rnd.nextInt(body.length);
            changed[at] ^= (byte) (1 + rnd.nextInt(255));
            boolean changeOnPrimary = rnd.nextBoolean();
            List<Frame> p = stream(f, rnd, 40_000, rnd.nextInt() & 0xffffffffL, changeOnPrimary ? changed : body, false);
            List<Frame> s = stream(f, rnd, 40_000, rnd.nextInt() & 0xffffffffL, changeOnPrimary ? body : changed, false);
            interleave(cmp, rnd, List.of(p), List.of(s), 1_000_000_000L);
            assertThat(sink.checkpoints).singleElement().satisfies(r -> {
                assertThat(r.reason()).isEqualTo(Reason.PAYLOAD_MISMATCH);
                assertThat(r.offset()).isEqualTo(at);
            });
            // Nothing at or after the changed byte left before the commit.
            long releasedData = sink.released.size();
            cmp.onCheckpointCommitted(2_000_000_000L);
            assertThat(sink.released.size()).isGreaterThan((int) releasedData - 1);
            assertThat(sink.released).hasSize(p.size());
            cmp.close();
            assertThat(f.unreleased()).isZero();
        });
    }

    @Test
    void randomGarbageNeverEscapesAsAnException() {
        Seeds.forEach(500, 90_000, seed -> {
            Random rnd = new Random(seed);
            Frames f = new Frames();
            RecordingSink sink = new RecordingSink();
            Comparator cmp = new Comparator(CompareConfig.defaults().withCompareTimeoutMs(1), sink);
            long now = 1_000_000_000L;
            for (int i = 0; i < 40; i++) {
                byte[] raw;
                if (rnd.nextBoolean()) {
                    raw = new byte[rnd.nextInt(120)];
                    rnd.nextBytes(raw);
                } else {
                    // A valid frame, then truncated and bit-flipped: the nastiest kind of garbage.
                    Frame valid = rnd.nextBoolean()
                            ? f.tcp(80, 1 + rnd.nextInt(3), rnd.nextInt(), rnd.nextInt(), rnd.nextInt(64), Frames.bytes(rnd.nextInt(100), seed))
                            : f.udp(53, 1 + rnd.nextInt(3), Frames.bytes(rnd.nextInt(100), seed));
                    raw = new byte[valid.length()];
                    valid.data().getBytes(0, raw);
                    valid.release();
                    raw = Arrays.copyOf(raw, rnd.nextInt(raw.length + 1));
                    for (int k = rnd.nextInt(4); k > 0 && raw.length > 0; k--) {
                        raw[rnd.nextInt(raw.length)] ^= (byte) (1 << rnd.nextInt(8));
                    }
                }
                if (rnd.nextBoolean()) {
                    cmp.onPrimary(f.raw(raw), now);
                } else {
                    cmp.onSecondary(f.raw(raw), now);
                }
                now += rnd.nextInt(3_000_000);
                cmp.doWork(now);
                if (rnd.nextInt(10) == 0) {
                    cmp.onCheckpointCommitted(now);
                }
            }
            cmp.onCheckpointCommitted(now);
            assertThat(cmp.stats().heldNow()).isZero();
            cmp.close();
            assertThat(f.unreleased()).isZero();
        });
    }
}
