package dev.colo.checkpoint.disk;

import static org.assertj.core.api.Assertions.assertThat;

import dev.colo.checkpoint.link.proto.DiskWrites;
import dev.colo.checkpoint.ship.Codec;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;

/** The relay's modes and its backpressure, stepped directly (the pair simulation runs it whole). */
class DiskRelayTest {
    static final int KIB = 1024;

    final List<DiskWrites> sent = new ArrayList<>();
    final List<String> wanted = new ArrayList<>();
    boolean linkUp = true;

    final DiskRelay.Link link = new DiskRelay.Link() {
        @Override
        public boolean send(DiskWrites batch) {
            if (!linkUp) {
                return false;
            }
            sent.add(batch);
            return true;
        }

        @Override
        public boolean writable() {
            return linkUp;
        }

        @Override
        public void checkpointWanted(String disk, long heldBytes) {
            wanted.add(disk + " " + heldBytes);
        }

        @Override
        public void broken(String disk, String why) {
        }
    };

    DiskRelay relay(long triggerBytes, long limitBytes) {
        return new DiskRelay("vdb", 1 << 30, Codec.LZ4, link, triggerBytes, limitBytes);
    }

    static DiskWriteLog.Extent write(long offset, int bytes) {
        return DiskWriteLog.Extent.of(offset, new byte[bytes]);
    }

    @Test
    void aRelayAtItsLimitStillTakesTheWritesAPauseDrains() {
        DiskRelay r = relay(16 * KIB, 64 * KIB);
        r.take(write(0, 4 * KIB)); // the copy
        r.cut(1); // the first checkpoint ends the copy
        for (int i = 0; i < 16; i++) {
            r.take(write(i * 4L * KIB, 4 * KIB));
        }
        assertThat(wanted).hasSize(1);
        // 64 KiB since checkpoint 1, none acknowledged: the guest's writes wait ...
        assertThat(r.writable()).isFalse();
        // ... until checkpoint 2 pauses the PVM: QMP stop waits for the writes in flight, and only
        // that checkpoint's acknowledgement could empty the log, so they are taken past the limit.
        r.pausing();
        assertThat(r.writable()).isTrue();
        r.take(write(1 << 20, 4 * KIB));
        r.cut(2);
        assertThat(r.writable()).as("after the cut the limit holds again").isFalse();
        assertThat(r.batches(2, 0, 1 << 20)).isNotEmpty();
        r.acknowledged(2);
        assertThat(r.heldBytes()).isZero();
        assertThat(r.writable()).isTrue();
    }

    @Test
    void aCopyBatchTheDownLinkCouldNotTakeIsCountedSoTheSecondaryFindsItMissing() {
        DiskRelay r = relay(16 * KIB, 64 * KIB);
        r.take(write(0, 4 * KIB));
        linkUp = false;
        r.take(write(4 * KIB, 4 * KIB));
        linkUp = true;
        r.take(write(8 * KIB, 4 * KIB));
        r.cut(1);
        // Three batches were made, two went: the first checkpoint tells the secondary "3".
        assertThat(sent).extracting(DiskWrites::getSequence).containsExactly(0, 2);
        assertThat(r.copyBatchesToConfirm(1)).hasValue(3);
        r.acknowledged(1);
        assertThat(r.copyBatchesToConfirm(2)).isEmpty();
    }

    @Test
    void keptWritesPastTheLimitDetachAndAResumedRelayLogsAgain() {
        DiskRelay r = relay(16 * KIB, 64 * KIB);
        r.cut(1);
        r.acknowledged(1);
        r.keep();
        assertThat(r.resumable()).isTrue();
        r.take(write(0, 8 * KIB));
        r.resume();
        assertThat(r.mode()).isEqualTo(DiskRelay.Mode.LOGGING);
        r.keep();
        r.take(write(0, 64 * KIB));
        assertThat(r.mode()).isEqualTo(DiskRelay.Mode.DETACHED);
        assertThat(r.resumable()).isFalse();
        assertThat(r.writable()).isTrue();
    }
}
