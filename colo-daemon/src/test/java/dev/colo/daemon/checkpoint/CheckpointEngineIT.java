package dev.colo.daemon.checkpoint;

import dev.colo.lab.Lab;
import org.junit.jupiter.api.BeforeAll;

/**
 * The engine's scenarios on real QEMU through the real mutual-TLS link: a PVM serving the counter
 * under background client load checkpoints 20 times; after every commit the new SVM answers with
 * exactly the next count, and the PVM goes on counting.
 */
class CheckpointEngineIT extends CheckpointEngineScenarios {
    @BeforeAll
    static void lab() {
        Lab.require();
    }

    @Override
    EngineRig newRig() throws Exception {
        return new QemuEngineRig("ckpt", 128);
    }

    @Override
    int checkpoints() {
        return 20;
    }
}
