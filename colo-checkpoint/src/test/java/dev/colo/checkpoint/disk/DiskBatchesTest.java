package dev.colo.checkpoint.disk;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import com.google.protobuf.ByteString;
import dev.colo.checkpoint.link.proto.DiskExtent;
import dev.colo.checkpoint.link.proto.DiskWrites;
import dev.colo.checkpoint.ship.Codec;
import dev.colo.checkpoint.ship.CorruptBatchException;
import java.util.List;
import org.junit.jupiter.api.Test;

/** Disk writes on the link: split into batches, and every check done before anything is written. */
class DiskBatchesTest {
    static DiskWriteLog.Epoch epoch(long seq, int writes, int size) {
        java.util.ArrayList<DiskWriteLog.Extent> w = new java.util.ArrayList<>();
        for (int i = 0; i < writes; i++) {
            byte[] b = new byte[size];
            java.util.Arrays.fill(b, (byte) i);
            w.add(i % 4 == 3 ? DiskWriteLog.Extent.zeroes((long) i * size, size) : DiskWriteLog.Extent.of((long) i * size, b));
        }
        return new DiskWriteLog.Epoch(seq, w);
    }

    @Test
    void epochsSplitIntoNumberedBatchesAndComeBackInOrder() {
        List<DiskWrites> batches = DiskBatches.encode(9, "vdb", List.of(epoch(7, 10, 4096), epoch(9, 3, 4096)), Codec.LZ4, 3 * 4096, 5, false);
        assertThat(batches).extracting(DiskWrites::getSequence).containsExactly(5, 6, 7, 8);
        assertThat(batches).extracting(DiskWrites::getEpoch).containsExactly(7L, 7L, 7L, 9L);
        java.util.List<DiskWriteLog.Extent> back = new java.util.ArrayList<>();
        for (DiskWrites b : batches) {
            assertThat(b.getCheckpointSeq()).isEqualTo(9);
            back.addAll(DiskBatches.decode(b, 1 << 20));
        }
        assertThat(back).hasSize(13);
        assertThat(back.get(3).zero()).isTrue();
        assertThat(back.get(4).data()[0]).isEqualTo((byte) 4);
        assertThat(back.get(12).offset()).isEqualTo(2 * 4096);
    }

    @Test
    void aDamagedBatchIsRefusedWhole() {
        DiskWrites good = DiskBatches.batch(3, 0, "vdb", 3, List.of(DiskWriteLog.Extent.of(512, new byte[] {1, 2, 3})), Codec.RAW, false);
        assertThatThrownBy(() -> DiskBatches.decode(good.toBuilder().setCrc32C(good.getCrc32C() + 1).build(), 4096))
                .isInstanceOf(CorruptBatchException.class).hasMessageContaining("CRC32C");
        assertThatThrownBy(() -> DiskBatches.decode(good, 513)).hasMessageContaining("outside its 513 bytes");
        assertThatThrownBy(() -> DiskBatches.decode(good.toBuilder().addExtents(DiskExtent.newBuilder().setOffset(0).setLength(9)).build(), 4096))
                .hasMessageContaining("more data than it carries");
        DiskWrites extra = good.toBuilder().setData(ByteString.copyFrom(new byte[] {1, 2, 3, 4})).setRawLength(4).build();
        java.util.zip.CRC32C crc = new java.util.zip.CRC32C();
        crc.update(new byte[] {1, 2, 3, 4});
        assertThatThrownBy(() -> DiskBatches.decode(extra.toBuilder().setCrc32C((int) crc.getValue()).build(), 4096))
                .hasMessageContaining("no extent names");
        assertThatThrownBy(() -> DiskBatches.decode(good.toBuilder().setCodec("lz4").build(), 4096)).isInstanceOf(CorruptBatchException.class);
    }
}
