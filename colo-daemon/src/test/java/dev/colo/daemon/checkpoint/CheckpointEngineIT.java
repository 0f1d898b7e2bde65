package dev.colo.daemon.checkpoint;

import static org.assertj.core.api.Assertions.assertThat;

import dev.colo.checkpoint.coordinator.CheckpointRecord;
import dev.colo.lab.Lab;
import java.time.Duration;
import java.util.List;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * The checkpoint engine on real QEMU through the real mutual-TLS link: a PVM serving the counter
 * under background client load checkpoints 20 times; after every commit the new SVM answers with
 * exactly the next count, and the PVM goes on counting.
 */
class CheckpointEngineIT {
    static final int CHECKPOINTS = 20;

    @BeforeAll
    static void lab() {
        Lab.require();
    }

    @Test
    void everyCheckpointYieldsAnSvmThatAnswersTheNextCount() throws Exception {
        try (EngineRig rig = new EngineRig("ckpt", 128)) {
            int count = rig.start();
            rig.startLoad();
            for (int i = 1; i <= CHECKPOINTS; i++) {
                if (i > 1) {
                    rig.checkpoint(i);
                }
                int fromSvm = rig.lanB.counter(Duration.ofSeconds(20));
                assertThat(fromSvm).as("SVM of checkpoint %d answers the next count", i).isEqualTo(count + 1);
                int fromPvm = rig.lanA.counter(Duration.ofSeconds(20));
                assertThat(fromPvm).as("PVM after checkpoint %d", i).isEqualTo(count + 1);
                count = fromPvm;
            }
            rig.stopLoad();
            List<CheckpointRecord> committed = rig.records.stream().filter(CheckpointRecord::committed).toList();
            assertThat(committed).hasSizeGreaterThanOrEqualTo(CHECKPOINTS);
            System.out.println("checkpoint engine on QEMU: " + CheckpointBench.summary(committed) + ", counter continuous in all " + CHECKPOINTS);
        }
    }
}
