package dev.colo.checkpoint.ship;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import com.google.protobuf.ByteString;
import dev.colo.checkpoint.dirty.ShadowMemory;
import dev.colo.checkpoint.link.proto.CheckpointBegin;
import dev.colo.checkpoint.link.proto.CheckpointCommit;
import dev.colo.checkpoint.link.proto.DeviceState;
import dev.colo.checkpoint.link.proto.PageBatch;
import dev.colo.hypervisor.GuestRam;
import java.nio.ByteBuffer;
import java.util.Random;
import java.util.zip.CRC32C;
import org.junit.jupiter.api.Test;

class PageBatchesTest {
    static final long SIZE = 8 << 20;

    /** Guest RAM in a heap array, for the secondary's side of the tests. */
    static final class ArrayRam implements GuestRam {
        final byte[] b = new byte[(int) SIZE];

        @Override public long size() { return SIZE; }
        @Override public void read(long o, ByteBuffer d) { d.put(b, (int) o, d.remaining()); }
        @Override public void write(long o, ByteBuffer s) { s.get(b, (int) o, s.remaining()); }
        @Override public ByteBuffer view(long o, int l) { return ByteBuffer.wrap(b, (int) o, l).slice(); }
        @Override public int chunkSize() { return (int) SIZE; }
        @Override public String describe() { return "array"; }
        @Override public void close() { }
    }

    record Setup(ShadowMemory shadow, long[] pages, ArrayRam expected) {}

    static Setup setup(long seed) {
        Random rnd = new Random(seed);
        ShadowMemory shadow = new ShadowMemory(SIZE, (int) SIZE);
        ArrayRam expected = new ArrayRam();
        long[] pages = rnd.longs(300, 0, SIZE / 4096).distinct().sorted().toArray();
        for (long p : pages) {
            byte[] page = new byte[4096];
            if (rnd.nextInt(4) > 0) { // a quarter stay zero pages
                for (int i = 0; i < 4096; i += 1 + rnd.nextInt(64)) {
                    page[i] = (byte) rnd.nextInt(256);
                }
            }
            shadow.view(p * 4096, 4096).put(page);
            System.arraycopy(page, 0, expected.b, (int) p * 4096, 4096);
        }
        return new Setup(shadow, pages, expected);
    }

    static CheckpointBegin begin(long seq, int batches) {
        return CheckpointBegin.newBuilder().setCheckpointSeq(seq).setGuestRamBytes(SIZE).setPageSize(4096).setBatches(batches).build();
    }

    static DeviceState state(long seq, byte[] s) {
        CRC32C crc = new CRC32C();
        crc.update(s);
        return DeviceState.newBuilder().setCheckpointSeq(seq).setState(ByteString.copyFrom(s)).setCrc32C((int) crc.getValue()).build();
    }

    @Test
    void everyCodecRoundTripsPagesAndZeroPagesExactly() {
        for (Codec codec : Codec.values()) {
            Setup s = setup(1);
            PageBatches.Encoded enc = PageBatches.encode(7, s.pages(), s.shadow(), codec, 64);
            assertThat(enc.zeroPages()).isPositive();
            assertThat(enc.rawBytes()).isEqualTo((s.pages().length - enc.zeroPages()) * 4096);
            CheckpointAssembler a = new CheckpointAssembler(begin(7, enc.batches().size()), SIZE);
            enc.batches().forEach(a::onBatch);
            a.onDeviceState(state(7, new byte[] {1, 2, 3}));
            ArrayRam target = new ArrayRam();
            java.util.Arrays.fill(target.b, (byte) 0x5a); // stale contents the zero pages must clear
            byte[] dev = a.commit(CheckpointCommit.newBuilder().setCheckpointSeq(7).setBatches(enc.batches().size()).build(), target);
            assertThat(dev).containsExactly(1, 2, 3);
            for (long p : s.pages()) {
                assertThat(java.util.Arrays.copyOfRange(target.b, (int) p * 4096, (int) p * 4096 + 4096))
                        .as("%s page %d", codec, p).isEqualTo(java.util.Arrays.copyOfRange(s.expected().b, (int) p * 4096, (int) p * 4096 + 4096));
            }
            System.out.printf("codec %-4s: %d pages (%d zero) -> %d raw bytes, %d on the wire%n", codec.wireName(), enc.pages(),
                    enc.zeroPages(), enc.rawBytes(), enc.wireBytes());
        }
    }

    @Test
    void aFlippedBitIsCaughtAndNothingIsWritten() {
        Setup s = setup(2);
        PageBatches.Encoded enc = PageBatches.encode(3, s.pages(), s.shadow(), Codec.RAW, 64);
        PageBatch bad = enc.batches().get(1);
        byte[] data = bad.getData().toByteArray();
        data[100] ^= 1;
        CheckpointAssembler a = new CheckpointAssembler(begin(3, enc.batches().size()), SIZE);
        for (PageBatch b : enc.batches()) {
            a.onBatch(b == bad ? bad.toBuilder().setData(ByteString.copyFrom(data)).build() : b);
        }
        a.onDeviceState(state(3, new byte[] {9}));
        ArrayRam target = new ArrayRam();
        assertThatThrownBy(() -> a.commit(CheckpointCommit.newBuilder().setCheckpointSeq(3).setBatches(enc.batches().size()).build(), target))
                .isInstanceOf(CorruptBatchException.class).hasMessageContaining("CRC32C");
        assertThat(target.b).as("nothing applied").containsOnly((byte) 0);
    }

    @Test
    void aMissingBatchAbortsTheCheckpoint() {
        Setup s = setup(3);
        PageBatches.Encoded enc = PageBatches.encode(4, s.pages(), s.shadow(), Codec.LZ4, 64);
        CheckpointAssembler a = new CheckpointAssembler(begin(4, enc.batches().size()), SIZE);
        enc.batches().stream().filter(b -> b.getSequence() != 2).forEach(a::onBatch);
        a.onDeviceState(state(4, new byte[] {9}));
        assertThatThrownBy(() -> a.commit(CheckpointCommit.newBuilder().setCheckpointSeq(4).setBatches(enc.batches().size()).build(), new ArrayRam()))
                .hasMessageContaining("missing batches [2]");
    }

    @Test
    void aBatchOrBeginWithAnImpossibleHeaderIsRefusedBeforeAnythingIsAllocated() {
        for (Codec c : Codec.values()) {
            assertThatThrownBy(() -> c.decompress(new byte[16], Integer.MAX_VALUE)).as(c.wireName()).isInstanceOf(CorruptBatchException.class)
                    .hasMessageContaining("at most");
            assertThatThrownBy(() -> c.decompress(new byte[16], -1)).as(c.wireName()).isInstanceOf(CorruptBatchException.class);
        }
        assertThatThrownBy(() -> new CheckpointAssembler(begin(0, 1), SIZE)).isInstanceOf(CorruptBatchException.class)
                .hasMessageContaining("checkpoint number 0 is out of range");
        assertThatThrownBy(() -> new CheckpointAssembler(begin(-1, 1), SIZE)).isInstanceOf(CorruptBatchException.class)
                .hasMessageContaining("checkpoint number 18446744073709551615 is out of range");
    }

    @Test
    void malformedBatchesAreRefusedWithTheReason() {
        Setup s = setup(4);
        PageBatch good = PageBatches.encode(5, s.pages(), s.shadow(), Codec.ZSTD, 64).batches().get(0);
        assertThatThrownBy(() -> PageBatches.verify(good, 6, SIZE / 4096)).hasMessageContaining("checkpoint 5, expected 6");
        assertThatThrownBy(() -> PageBatches.verify(good.toBuilder().setCodec("snappy").build(), 5, SIZE / 4096))
                .hasMessageContaining("unknown page codec");
        assertThatThrownBy(() -> PageBatches.verify(good.toBuilder().addPages(SIZE).build(), 5, SIZE / 4096))
                .isInstanceOf(CorruptBatchException.class);
        assertThatThrownBy(() -> PageBatches.verify(good.toBuilder().setData(good.getData().substring(0, 10)).build(), 5, SIZE / 4096))
                .isInstanceOf(CorruptBatchException.class);
        CheckpointAssembler a = new CheckpointAssembler(begin(5, 1), SIZE);
        a.onBatch(good);
        assertThatThrownBy(() -> a.onBatch(good)).hasMessageContaining("twice");
        assertThatThrownBy(() -> a.onDeviceState(state(5, new byte[] {1}).toBuilder().setCrc32C(0).build())).hasMessageContaining("CRC32C");
        assertThatThrownBy(() -> new CheckpointAssembler(begin(5, 1).toBuilder().setGuestRamBytes(1 << 20).build(), SIZE))
                .hasMessageContaining("our standby has");
    }
}
