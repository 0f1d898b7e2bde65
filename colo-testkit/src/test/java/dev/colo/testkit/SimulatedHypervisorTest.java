package dev.colo.testkit;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.colo.hypervisor.DeviceState;
import dev.colo.hypervisor.DomainRef;
import dev.colo.hypervisor.DomainState;
import dev.colo.hypervisor.GuestRam;
import dev.colo.hypervisor.HypervisorException;
import dev.colo.hypervisor.HypervisorException.Kind;
import dev.colo.hypervisor.LifecycleEvent;
import dev.colo.hypervisor.QmpException;
import java.nio.ByteBuffer;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;

class SimulatedHypervisorTest {
    static final Duration T = Duration.ofSeconds(1);
    final SimulatedHypervisor sim = new SimulatedHypervisor();

    static String xml(String name, boolean shared, boolean incoming) {
        return "<domain type='qemu'><name>" + name + "</name><memory unit='MiB'>2</memory>"
                + (shared ? "<memoryBacking><source type='file'/><access mode='shared'/></memoryBacking>" : "")
                + (incoming ? "<qemu:commandline><qemu:arg value='-incoming'/><qemu:arg value='defer'/></qemu:commandline>" : "")
                + "</domain>";
    }

    /** The checkpoint primitive, as the real-QEMU test runs it, on the simulation. */
    @Test
    void checkpointPrimitiveCarriesRamAndDeviceStateToTheStandby() {
        DomainRef pvm = sim.define(xml("pvm", true, false));
        sim.start(pvm, false);
        for (int round = 1; round <= 5; round++) {
            sim.guestWrite("pvm", 4096L * round, ("count=" + round).getBytes());
            sim.setDeviceState("pvm", "cpu@" + round);
            DomainRef standby = sim.define(xml("svm" + round, true, true));
            sim.start(standby, true);

            sim.pause(pvm, T);
            assertThatThrownBy(() -> sim.guestWrite("pvm", 0, new byte[] {1})).isInstanceOf(IllegalStateException.class);
            try (GuestRam src = sim.mapGuestRam(pvm); GuestRam dst = sim.mapGuestRam(standby)) {
                ByteBuffer all = ByteBuffer.allocate((int) src.size());
                src.read(0, all);
                dst.write(0, all.flip());
            }
            DeviceState state = sim.saveDeviceState(pvm, T);
            sim.resume(pvm, T);
            sim.loadDeviceState(standby, state, T);
            sim.resume(standby, T);

            assertThat(sim.state(standby)).isEqualTo(DomainState.RUNNING);
            assertThat(sim.deviceStateOf("svm" + round)).isEqualTo("cpu@" + round);
            assertThat(new String(sim.guestRead("svm" + round, 4096L * round, 7))).isEqualTo("count=" + round);
            sim.destroy(standby);
            sim.undefine(standby);
        }
    }

    @Test
    void enforcesTheRulesRealQemuEnforces() {
        DomainRef pvm = sim.define(xml("pvm", true, false));
        DomainRef plain = sim.define(xml("plain", false, false));
        DomainRef standby = sim.define(xml("svm", true, true));
        sim.start(pvm, false);
        sim.start(plain, false);
        sim.start(standby, true);
        assertThatThrownBy(() -> sim.saveDeviceState(pvm, T)).hasMessageContaining("needs a paused domain");
        assertThatThrownBy(() -> sim.mapGuestRam(plain)).isInstanceOfSatisfying(HypervisorException.class,
                e -> assertThat(e.kind()).isEqualTo(Kind.UNSUPPORTED_DOMAIN));
        sim.resume(standby, T); // as QEMU: before the load, cont is accepted and runs nothing
        assertThat(sim.state(standby)).isEqualTo(DomainState.PAUSED);
        sim.pause(pvm, T);
        DeviceState s = sim.saveDeviceState(pvm, T);
        sim.loadDeviceState(standby, s, T);
        assertThat(sim.state(standby)).isEqualTo(DomainState.PAUSED);
        assertThatThrownBy(() -> sim.loadDeviceState(standby, s, T)).isInstanceOf(HypervisorException.class);
        assertThatThrownBy(() -> sim.start(pvm, false)).isInstanceOfSatisfying(HypervisorException.class,
                e -> assertThat(e.kind()).isEqualTo(Kind.INVALID_STATE));
        assertThatThrownBy(() -> sim.qmp(pvm, "bogus", null, T)).isInstanceOfSatisfying(QmpException.class,
                e -> assertThat(e.errorClass()).isEqualTo("CommandNotFound"));
    }

    @Test
    void injectedFaultsSurfaceAsTypedErrors() {
        List<LifecycleEvent> events = new ArrayList<>();
        sim.onLifecycle(events::add);
        DomainRef pvm = sim.define(xml("pvm", true, false));
        DomainRef standby = sim.define(xml("svm", true, true));
        sim.start(pvm, false);
        sim.start(standby, true);

        sim.injectQmpTimeout("pvm", "stop");
        assertThatThrownBy(() -> sim.pause(pvm, T)).isInstanceOfSatisfying(HypervisorException.class,
                e -> assertThat(e.kind()).isEqualTo(Kind.TIMEOUT));
        sim.clearFaults();
        sim.pause(pvm, T);

        sim.injectSlowSave("pvm", Duration.ofSeconds(5));
        assertThatThrownBy(() -> sim.saveDeviceState(pvm, T)).isInstanceOfSatisfying(HypervisorException.class,
                e -> assertThat(e.kind()).isEqualTo(Kind.TIMEOUT));
        assertThat(sim.saveDeviceState(pvm, Duration.ofSeconds(10)).size()).isPositive();

        sim.injectCutStream("svm");
        DeviceState s = sim.saveDeviceState(pvm, Duration.ofSeconds(10));
        assertThatThrownBy(() -> sim.loadDeviceState(standby, s, T)).isInstanceOfSatisfying(HypervisorException.class,
                e -> assertThat(e.kind()).isEqualTo(Kind.STREAM));
        assertThat(sim.state(standby)).isEqualTo(DomainState.SHUTOFF);

        sim.setAvailable(false);
        assertThatThrownBy(() -> sim.lookup("pvm")).isInstanceOfSatisfying(HypervisorException.class,
                e -> assertThat(e.kind()).isEqualTo(Kind.UNAVAILABLE));
        sim.setAvailable(true);

        sim.crash("pvm");
        assertThat(sim.state(pvm)).isEqualTo(DomainState.SHUTOFF);
        assertThat(events).extracting(LifecycleEvent::kind).contains(LifecycleEvent.Kind.DEFINED, LifecycleEvent.Kind.STARTED,
                LifecycleEvent.Kind.CRASHED);
        assertThat(sim.qmpLog()).contains("pvm:stop", "pvm:migrate", "svm:migrate-incoming");
    }

    @Test
    void manualClockOnlyMovesForward() {
        ManualClock c = new ManualClock(0);
        assertThat(c.advanceMs(5)).isEqualTo(5_000_000L);
        assertThatThrownBy(() -> c.advanceNs(-1)).isInstanceOf(IllegalArgumentException.class);
    }
}
