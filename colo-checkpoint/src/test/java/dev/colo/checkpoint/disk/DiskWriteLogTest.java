package dev.colo.checkpoint.disk;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.colo.testkit.Seeds;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The epoch cut against a model: a PVM disk written at random, checkpoints that commit, abort, or
 * commit with their acknowledgement lost, and a {@link ReplicaDisk} that applies what is shipped.
 * After every commit the replica must be exactly the PVM's disk at that checkpoint's pause.
 */
class DiskWriteLogTest {
    static final int SIZE = 256 * 1024;

    @TempDir
    Path dir;

    @Test
    void theReplicaIsThePvmDiskAtEveryCommittedPause() {
        Seeds.forEach(300, 1, seed -> {
            Random rnd = new Random(seed);
            byte[] pvm = new byte[SIZE];
            DiskWriteLog log = new DiskWriteLog();
            try (ReplicaDisk replica = ReplicaDisk.create("vdb", dir.resolve("base-" + seed + ".raw"), SIZE)) {
                long seq = 0;
                int commits = 0;
                for (int step = 0; step < 200; step++) {
                    if (rnd.nextInt(6) > 0) {
                        write(rnd, pvm, log);
                        continue;
                    }
                    seq += 1 + rnd.nextInt(2); // an abandoned number is skipped, never reused
                    log.cut(seq);
                    byte[] snapshot = pvm.clone();
                    List<DiskWriteLog.Epoch> shipped = log.unacknowledged(seq);
                    switch (rnd.nextInt(4)) {
                        case 0 -> {
                            // aborted before the secondary applied anything: it keeps the last disk
                        }
                        case 1 -> apply(replica, shipped); // applied, but the ack never arrived: the primary resends
                        default -> {
                            apply(replica, shipped);
                            log.acknowledged(seq);
                            assertThat(Arrays.mismatch(replica.read(0, SIZE), snapshot)).as("replica vs PVM at checkpoint %d", seq)
                                    .isEqualTo(-1);
                            assertThat(log.unacknowledged(seq)).isEmpty();
                            commits++;
                        }
                    }
                }
                assertThat(commits).isPositive();
            } catch (java.io.IOException e) {
                throw new java.io.UncheckedIOException(e);
            }
        });
    }

    static void write(Random rnd, byte[] pvm, DiskWriteLog log) {
        int offset = rnd.nextInt(SIZE - 8192);
        int length = 1 + rnd.nextInt(8192);
        if (rnd.nextInt(5) == 0) {
            Arrays.fill(pvm, offset, offset + length, (byte) 0);
            log.append(DiskWriteLog.Extent.zeroes(offset, length));
        } else {
            byte[] data = new byte[length];
            rnd.nextBytes(data);
            System.arraycopy(data, 0, pvm, offset, length);
            log.append(DiskWriteLog.Extent.of(offset, data));
        }
    }

    static void apply(ReplicaDisk replica, List<DiskWriteLog.Epoch> epochs) {
        for (DiskWriteLog.Epoch e : epochs) {
            e.writes().forEach(replica::apply);
        }
        replica.sync();
    }

    @Test
    void holdsBytesUntilAcknowledgedAndNumbersOnlyGrow() {
        DiskWriteLog log = new DiskWriteLog();
        log.append(DiskWriteLog.Extent.of(0, new byte[100]));
        log.append(DiskWriteLog.Extent.zeroes(0, 1 << 30));
        assertThat(log.heldBytes()).isEqualTo(100);
        log.cut(3);
        log.append(DiskWriteLog.Extent.of(0, new byte[10]));
        log.cut(4);
        assertThat(log.unacknowledged(3)).extracting(DiskWriteLog.Epoch::seq).containsExactly(3L);
        assertThat(log.unacknowledged(4)).extracting(DiskWriteLog.Epoch::seq).containsExactly(3L, 4L);
        log.acknowledged(3);
        assertThat(log.heldBytes()).isEqualTo(10);
        assertThatThrownBy(() -> log.cut(4)).hasMessageContaining("only grow");
    }

    @Test
    void zeroesKeepANewReplicaSparseAndOverwriteData() throws Exception {
        Path p = dir.resolve("sparse.raw");
        try (ReplicaDisk r = ReplicaDisk.create("vdb", p, 64L << 20)) {
            r.apply(DiskWriteLog.Extent.zeroes(0, 64L << 20));
            assertThat(r.bytesWritten()).isZero();
            r.apply(DiskWriteLog.Extent.of(4096, new byte[] {1, 2, 3}));
            r.apply(DiskWriteLog.Extent.zeroes(0, 1 << 20));
            assertThat(r.read(4096, 3)).containsExactly(0, 0, 0);
            r.sync();
        }
        assertThat(Files.size(p)).isEqualTo(64L << 20);
        assertThatThrownBy(() -> ReplicaDisk.create("vdb", p, 4096).apply(DiskWriteLog.Extent.of(4000, new byte[200])))
                .hasMessageContaining("outside disk vdb");
    }
}
