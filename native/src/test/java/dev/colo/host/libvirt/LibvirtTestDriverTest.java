package dev.colo.host.libvirt;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.awaitility.Awaitility.await;

import dev.colo.hypervisor.DomainRef;
import dev.colo.hypervisor.DomainState;
import dev.colo.hypervisor.HypervisorException;
import dev.colo.hypervisor.HypervisorException.Kind;
import dev.colo.hypervisor.LifecycleEvent;
import java.time.Duration;
import java.util.List;
import java.util.UUID;
import java.util.concurrent.CopyOnWriteArrayList;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/** Lifecycle through the real binding, against libvirt's in-process {@code test:///default} driver. */
class LibvirtTestDriverTest {
    LibvirtHypervisor hv;

    @BeforeEach
    void open() {
        hv = new LibvirtHypervisor("test:///default");
    }

    @AfterEach
    void close() {
        hv.close();
    }

    static String xml(String name) {
        return "<domain type='test'><name>" + name + "</name><uuid>" + UUID.randomUUID() + "</uuid>"
                + "<memory unit='MiB'>64</memory><os><type>hvm</type></os></domain>";
    }

    @Test
    void definesStartsStopsAndUndefinesWithEvents() {
        List<LifecycleEvent> events = new CopyOnWriteArrayList<>();
        String name = "colo-unit-" + System.nanoTime();
        try (AutoCloseable sub = hv.onLifecycle(events::add)) {
            DomainRef ref = hv.define(xml(name));
            assertThat(hv.lookup(name)).contains(ref);
            assertThat(hv.lookup(ref.uuid())).contains(ref);
            assertThat(hv.state(ref)).isEqualTo(DomainState.SHUTOFF);

            hv.start(ref, false);
            assertThat(hv.state(ref)).isEqualTo(DomainState.RUNNING);
            assertThat(hv.describe(ref, false)).contains("<name>" + name + "</name>");

            hv.destroy(ref);
            hv.destroy(ref); // a stopped domain is left alone
            assertThat(hv.state(ref)).isEqualTo(DomainState.SHUTOFF);

            // (test:///default cannot start paused; the real-QEMU tests cover that.)
            hv.undefine(ref);
            assertThat(hv.lookup(name)).isEmpty();

            await().atMost(Duration.ofSeconds(5)).untilAsserted(() -> assertThat(events)
                    .filteredOn(e -> e.domain().name().equals(name)).extracting(LifecycleEvent::kind)
                    .contains(LifecycleEvent.Kind.DEFINED, LifecycleEvent.Kind.STARTED, LifecycleEvent.Kind.STOPPED,
                            LifecycleEvent.Kind.UNDEFINED));
        } catch (Exception e) {
            throw new AssertionError(e);
        }
    }

    @Test
    void missingDomainIsATypedError() {
        assertThat(hv.lookup("no-such-domain-" + System.nanoTime())).isEmpty();
        assertThatThrownBy(() -> hv.require("no-such-domain"))
                .isInstanceOfSatisfying(HypervisorException.class, e -> assertThat(e.kind()).isEqualTo(Kind.DOMAIN_NOT_FOUND))
                .hasMessageContaining("no-such-domain");
        DomainRef ghost = new DomainRef("ghost", UUID.randomUUID().toString());
        assertThatThrownBy(() -> hv.state(ghost))
                .isInstanceOfSatisfying(LibvirtFailure.class, e -> {
                    assertThat(e.kind()).isEqualTo(Kind.DOMAIN_NOT_FOUND);
                    assertThat(e.code()).isEqualTo("VIR_ERR_NO_DOMAIN");
                    assertThat(e.errorDomain()).isNotBlank();
                });
    }

    @Test
    void libvirtErrorsCarryCodeDomainAndMessage() {
        assertThatThrownBy(() -> hv.define("<domain type='test'><name>bad</name></domain>"))
                .isInstanceOfSatisfying(LibvirtFailure.class, e -> {
                    assertThat(e.code()).startsWith("VIR_ERR_");
                    assertThat(e.getMessage()).contains("define domain on bad failed").contains("libvirt code=");
                });
        assertThatThrownBy(() -> hv.define("<not-a-domain/>"))
                .isInstanceOfSatisfying(HypervisorException.class, e -> assertThat(e.kind()).isEqualTo(Kind.UNSUPPORTED_DOMAIN));
    }

    @Test
    void qmpOnADriverWithoutAMonitorIsATypedError() {
        String name = "colo-unit-qmp-" + System.nanoTime();
        DomainRef ref = hv.define(xml(name));
        try {
            hv.start(ref, false);
            assertThatThrownBy(() -> hv.pause(ref, Duration.ofSeconds(5))).isInstanceOf(HypervisorException.class);
        } finally {
            hv.destroy(ref);
            hv.undefine(ref);
        }
    }

    @Test
    void unreachableLibvirtdIsUnavailable() {
        assertThatThrownBy(() -> new LibvirtHypervisor("qemu:///system?socket=/nonexistent/colo-test.sock"))
                .isInstanceOfSatisfying(HypervisorException.class, e -> assertThat(e.kind()).isEqualTo(Kind.UNAVAILABLE))
                .hasMessageContaining("is libvirtd running?");
    }

    @Test
    void closedHypervisorRefusesCalls() {
        LibvirtHypervisor other = new LibvirtHypervisor("test:///default");
        other.close();
        other.close();
        assertThatThrownBy(() -> other.lookup("x"))
                .isInstanceOfSatisfying(HypervisorException.class, e -> assertThat(e.kind()).isEqualTo(Kind.UNAVAILABLE));
    }
}
