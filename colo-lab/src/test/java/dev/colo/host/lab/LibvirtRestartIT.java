package dev.colo.host.lab;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.awaitility.Awaitility.await;

import dev.colo.host.libvirt.LibvirtHypervisor;
import dev.colo.host.libvirt.RamFileLocator;
import dev.colo.hypervisor.DomainRef;
import dev.colo.hypervisor.DomainState;
import dev.colo.hypervisor.HypervisorException;
import dev.colo.hypervisor.HypervisorException.Kind;
import dev.colo.hypervisor.LifecycleEvent;
import dev.colo.lab.Lab;
import dev.colo.host.posix.Command;
import dev.colo.lab.TestGuest;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/** A QEMU killed with -9 is reported as crashed; libvirtd going away and coming back is survived. */
class LibvirtRestartIT {
    static final String PREFIX = "colo-it-restart-" + ProcessHandle.current().pid();

    @BeforeAll
    static void lab() {
        Lab.require();
        Lab.sweepStaleDomains("colo-it-restart-");
    }

    static String guest(String name) {
        return TestGuest.locate().domainXml(name, 128, "10.204.0.2/24", "", true, null);
    }

    @Test
    void killedQemuIsReportedAsCrashed() throws Exception {
        List<LifecycleEvent> events = new CopyOnWriteArrayList<>();
        try (LibvirtHypervisor hv = new LibvirtHypervisor("qemu:///system"); AutoCloseable sub = hv.onLifecycle(events::add)) {
            DomainRef d = hv.define(guest(PREFIX + "-kill"));
            try {
                hv.start(d, false);
                long pid = RamFileLocator.system().qemuPid(d.name());
                Command.run(Duration.ofSeconds(5), "kill", "-9", Long.toString(pid)).orThrow();
                await().atMost(Duration.ofSeconds(15)).untilAsserted(() -> assertThat(events)
                        .filteredOn(e -> e.domain().equals(d)).extracting(LifecycleEvent::kind).contains(LifecycleEvent.Kind.CRASHED));
                assertThat(hv.state(d)).isEqualTo(DomainState.SHUTOFF);
            } finally {
                hv.destroy(d);
                hv.undefine(d);
            }
        }
    }

    @Test
    void survivesLibvirtdRestartWithTypedErrorsWhileItIsDown() {
        Path pidFile = Path.of("/run/libvirtd.pid");
        if ("systemd".equals(Command.run(Duration.ofSeconds(5), "ps", "-p", "1", "-o", "comm=").out().trim())) {
            // Under systemd the service is restarted by systemctl instead; same expectations.
            restartUnderSystemd();
            return;
        }
        assertThat(pidFile).as("libvirtd started by scripts/lab-up").exists();
        try (LibvirtHypervisor hv = new LibvirtHypervisor("qemu:///system")) {
            DomainRef d = hv.define(guest(PREFIX + "-live"));
            try {
                hv.start(d, false);
                String pid = Files.readString(pidFile).trim();
                Command.run(Duration.ofSeconds(5), "kill", pid).orThrow();
                await().atMost(Duration.ofSeconds(20)).until(() -> !Command.run(Duration.ofSeconds(5), "kill", "-0", pid).ok());

                assertThatThrownBy(() -> hv.state(d))
                        .isInstanceOfSatisfying(HypervisorException.class, e -> assertThat(e.kind()).isEqualTo(Kind.UNAVAILABLE))
                        .hasMessageContaining("libvirtd");

                Command.run(Duration.ofSeconds(60), Lab.repoRoot().resolve("scripts/lab-up").toString()).orThrow();
                // Reconnects by itself; QEMU kept running while libvirtd was away.
                assertThat(hv.state(d)).isEqualTo(DomainState.RUNNING);
            } finally {
                Command.run(Duration.ofSeconds(60), Lab.repoRoot().resolve("scripts/lab-up").toString());
                hv.destroy(d);
                hv.undefine(d);
            }
        } catch (java.io.IOException e) {
            throw new AssertionError(e);
        }
    }

    private static void restartUnderSystemd() {
        try (LibvirtHypervisor hv = new LibvirtHypervisor("qemu:///system")) {
            assertThat(hv.lookup(PREFIX + "-none")).isEmpty();
            Command.run(Duration.ofSeconds(60), "systemctl", "restart", "libvirtd").orThrow();
            await().atMost(Duration.ofSeconds(30)).ignoreExceptions().until(() -> hv.lookup(PREFIX + "-none").isEmpty());
        }
    }
}
