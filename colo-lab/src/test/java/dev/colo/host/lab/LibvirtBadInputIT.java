package dev.colo.host.lab;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.colo.host.libvirt.DomainXml;
import dev.colo.host.libvirt.LibvirtHypervisor;
import dev.colo.hypervisor.DeviceState;
import dev.colo.hypervisor.DomainRef;
import dev.colo.hypervisor.DomainState;
import dev.colo.hypervisor.HypervisorException;
import dev.colo.hypervisor.HypervisorException.Kind;
import dev.colo.hypervisor.QmpException;
import dev.colo.lab.Lab;
import dev.colo.lab.TestGuest;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Arrays;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * Bad input against real QEMU: each case gives a typed, readable error and leaves no half-started
 * VM or stray socket behind. The guests here have no NIC; none of these cases needs the network.
 */
class LibvirtBadInputIT {
    static final Duration QMP = Duration.ofSeconds(10);
    static final String PREFIX = "colo-it-bad-" + ProcessHandle.current().pid();
    static LibvirtHypervisor hv;

    @BeforeAll
    static void lab() {
        Lab.require();
        Lab.sweepStaleDomains("colo-it-bad-");
        hv = new LibvirtHypervisor("qemu:///system");
    }

    @AfterAll
    static void cleanup() {
        if (hv != null) {
            hv.close();
        }
        Lab.sweepStaleDomains(PREFIX);
    }

    static String guest(String name, boolean shared, String extra) {
        return TestGuest.locate().domainXml(name, 128, "10.203.0.2/24", "", shared, extra);
    }

    @Test
    void qmpErrorsAndTimeoutsAreTyped() {
        DomainRef d = hv.define(guest(PREFIX + "-qmp", false, null));
        try {
            hv.start(d, false);
            assertThatThrownBy(() -> hv.qmp(d, "no-such-command", null, QMP))
                    .isInstanceOfSatisfying(QmpException.class, e -> assertThat(e.errorClass()).isEqualTo("CommandNotFound"));
            assertThatThrownBy(() -> hv.qmp(d, "query-status", null, Duration.ofNanos(1)))
                    .isInstanceOfSatisfying(HypervisorException.class, e -> assertThat(e.kind()).isEqualTo(Kind.TIMEOUT))
                    .hasMessageContaining("no answer within");
            // The monitor still works after a timed-out call.
            hv.pause(d, QMP);
            assertThat(hv.qmp(d, "query-status", null, QMP).path("status").asText()).isEqualTo("paused");
            hv.resume(d, QMP);
            assertThat(hv.state(d)).isEqualTo(DomainState.RUNNING);
        } finally {
            hv.destroy(d);
            hv.undefine(d);
        }
    }

    @Test
    void domainWithoutSharedMemoryIsRefusedClearly() {
        DomainRef d = hv.define(guest(PREFIX + "-private", false, null));
        try {
            hv.start(d, false);
            assertThatThrownBy(() -> hv.mapGuestRam(d))
                    .isInstanceOfSatisfying(HypervisorException.class, e -> assertThat(e.kind()).isEqualTo(Kind.UNSUPPORTED_DOMAIN))
                    .hasMessageContaining("no shared file-backed memory");
        } finally {
            hv.destroy(d);
            hv.undefine(d);
        }
    }

    @Test
    void missingDomainIsTyped() {
        assertThatThrownBy(() -> hv.require(PREFIX + "-absent"))
                .isInstanceOfSatisfying(HypervisorException.class, e -> assertThat(e.kind()).isEqualTo(Kind.DOMAIN_NOT_FOUND));
    }

    @Test
    void streamCutInTheMiddleDestroysTheStandbyAndLeavesNoSocket() throws Exception {
        DomainRef pvm = hv.define(guest(PREFIX + "-src", true, null));
        String standbyXml = DomainXml.parse(guest(PREFIX + "-dst", true, null)).asIncomingStandby().toXml();
        DomainRef standby = hv.define(standbyXml);
        try {
            hv.start(pvm, false);
            hv.start(standby, true);
            hv.pause(pvm, QMP);
            DeviceState full = hv.saveDeviceState(pvm, QMP);
            hv.resume(pvm, QMP);
            long socketsBefore = openSockets();
            DeviceState cut = new DeviceState(Arrays.copyOf(full.bytes(), full.size() / 2));
            assertThatThrownBy(() -> hv.loadDeviceState(standby, cut, QMP))
                    .isInstanceOfSatisfying(HypervisorException.class, e -> assertThat(e.kind()).isIn(Kind.STREAM, Kind.TIMEOUT))
                    .hasMessageContaining(standby.name());
            assertThat(hv.state(standby)).isEqualTo(DomainState.SHUTOFF);
            // Other threads of this JVM open and close descriptors too (one more descriptor once failed
            // this check in a suite); a leaked socket stays, so the count must settle back.
            long deadline = System.nanoTime() + 3_000_000_000L;
            while (openSockets() > socketsBefore && System.nanoTime() < deadline) {
                Thread.sleep(100);
            }
            assertThat(openSockets()).isLessThanOrEqualTo(socketsBefore);
            assertThat(hv.state(pvm)).isEqualTo(DomainState.RUNNING);
        } finally {
            hv.destroy(pvm);
            hv.destroy(standby);
            hv.undefine(pvm);
            hv.undefine(standby);
        }
    }

    /** This process's open sockets: what a cut stream must not leave behind. */
    static long openSockets() throws Exception {
        try (var s = Files.list(Path.of("/proc/self/fd"))) {
            return s.filter(fd -> {
                try {
                    return Files.readSymbolicLink(fd).toString().startsWith("socket:");
                } catch (java.io.IOException e) {
                    return false; // closed meanwhile
                }
            }).count();
        }
    }
}
