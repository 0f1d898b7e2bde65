package dev.colo.host.lab;

import static org.assertj.core.api.Assertions.assertThat;

import dev.colo.host.libvirt.LibvirtHypervisor;
import dev.colo.hypervisor.DomainState;
import dev.colo.lab.Lab;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * The checkpoint primitive end to end in Java on real QEMU: after each round the standby answers
 * the CGI counter with exactly the next count, and the primary keeps counting on its own.
 */
class CheckpointPrimitiveIT {
    static final int ROUNDS = 6;

    @BeforeAll
    static void lab() {
        Lab.require();
    }

    @Test
    void standbyContinuesTheCounterAfterEveryCheckpoint() {
        List<PrimitiveRig.Round> rounds = new ArrayList<>();
        try (LibvirtHypervisor hv = new LibvirtHypervisor("qemu:///system"); PrimitiveRig rig = new PrimitiveRig(hv, "prim", 128)) {
            int count = rig.lanA().awaitCounter(Duration.ofSeconds(90));
            for (int i = 0; i < ROUNDS; i++) {
                rig.prepareStandby();
                PrimitiveRig.Round r = rig.checkpoint();
                rounds.add(r);
                assertThat(hv.state(rig.pvm())).isEqualTo(DomainState.RUNNING);

                int fromStandby = rig.lanB().awaitCounter(Duration.ofSeconds(30));
                assertThat(fromStandby).as("standby count after checkpoint %d", i + 1).isEqualTo(count + 1);
                int fromPrimary = rig.lanA().counter(Duration.ofSeconds(10));
                assertThat(fromPrimary).as("primary count after checkpoint %d", i + 1).isEqualTo(count + 1);
                count = fromPrimary;
                System.out.printf("checkpoint-primitive round %d: paused %.1f ms (copy %.1f, save %.1f, %d device bytes), standby running %.1f ms after PVM resumed (load %.1f), count %d%n",
                        i + 1, r.pausedNs() / 1e6, r.copyNs() / 1e6, r.saveNs() / 1e6, r.deviceBytes(), r.standbyReadyNs() / 1e6,
                        r.loadNs() / 1e6, count);
                rig.retireStandby();
            }
        }
        assertThat(rounds).hasSize(ROUNDS);
        assertThat(rounds).allSatisfy(r -> assertThat(r.deviceBytes()).isGreaterThan(10_000));
    }
}
