package dev.colo.host.lab;

import static org.assertj.core.api.Assertions.assertThat;

import dev.colo.host.libvirt.LibvirtHypervisor;
import dev.colo.hypervisor.DomainRef;
import dev.colo.hypervisor.DomainState;
import dev.colo.lab.Lab;
import dev.colo.lab.LabLan;
import dev.colo.lab.TestGuest;
import java.time.Duration;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * The lab works end to end: the test guest boots under libvirt (TCG), its NIC is a tap inside a
 * network namespace this test creates, and the CGI counter answers twice, counting up.
 */
class GuestBootIT {
    @BeforeAll
    static void lab() {
        Lab.require();
        Lab.sweepStaleDomains("colo-it-");
    }

    @Test
    void bootsAndServesTheCounterOnATapInANamespace() {
        String tap = LabLan.newHostTap();
        DomainRef ref = null;
        try (LibvirtHypervisor hv = new LibvirtHypervisor("qemu:///system"); LabLan lan = LabLan.create("boot")) {
            String xml = TestGuest.locate().domainXml("colo-it-boot-" + ProcessHandle.current().pid(), 128, LabLan.GUEST_CIDR,
                    TestGuest.tapNic(tap, LabLan.GUEST_MAC), false, null);
            long t0 = System.nanoTime();
            ref = hv.define(xml);
            hv.start(ref, false);
            long started = System.nanoTime();
            lan.plug(tap);
            assertThat(hv.state(ref)).isEqualTo(DomainState.RUNNING);

            int first = lan.awaitCounter(Duration.ofSeconds(90));
            long answered = System.nanoTime();
            int second = lan.counter(Duration.ofSeconds(5));
            assertThat(second).isEqualTo(first + 1);
            assertThat(lan.httpGet("/index.html", Duration.ofSeconds(5))).contains("colo");

            System.out.printf("guest-boot: define+start %d ms, start-to-first-answer %d ms, counter %d -> %d%n",
                    (started - t0) / 1_000_000, (answered - started) / 1_000_000, first, second);
            hv.destroy(ref);
            hv.undefine(ref);
            ref = null;
        } finally {
            LabLan.deleteHostTap(tap);
            if (ref != null) {
                Lab.sweepStaleDomains(ref.name());
            }
        }
    }
}
