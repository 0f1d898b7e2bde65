package dev.colo.testkit.contract;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import dev.colo.hypervisor.DeviceState;
import dev.colo.hypervisor.DomainRef;
import dev.colo.hypervisor.DomainState;
import dev.colo.hypervisor.GuestRam;
import dev.colo.hypervisor.Hypervisor;
import dev.colo.hypervisor.HypervisorException;
import dev.colo.hypervisor.HypervisorException.Kind;
import dev.colo.hypervisor.LifecycleEvent;
import dev.colo.hypervisor.QmpException;
import dev.colo.hypervisor.ReusableSvm;
import java.nio.ByteBuffer;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.UUID;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

/**
 * What colo relies on from a {@link Hypervisor}, written once and run in every world that
 * implements the port: the simulated hypervisor (unit test), libvirt's {@code test:///default}
 * driver (unit test, lifecycle only) and real QEMU under libvirtd (integration test). A world says
 * what it can do in {@link Abilities}; a case it cannot run is skipped, never faked. Where the
 * simulation and QEMU disagree, this test is where it shows.
 */
public abstract class HypervisorContract {
    /** What a world supports beyond define/start/destroy/undefine/lookup/events. */
    public record Abilities(boolean startPaused, boolean qmp, boolean deviceState) {}

    private static final Duration QMP = Duration.ofSeconds(10);
    private static final AtomicInteger SEQ = new AtomicInteger();
    private final List<DomainRef> made = new ArrayList<>();
    private final Hypervisor hv;
    private final Abilities abilities;

    /** One world: its hypervisor (closed after each case by {@link #closeWorld}) and what it can do. */
    protected HypervisorContract(Hypervisor hv, Abilities abilities) {
        this.hv = hv;
        this.abilities = abilities;
    }

    protected final Hypervisor hypervisor() {
        return hv;
    }

    protected final Abilities abilities() {
        return abilities;
    }

    /** A startable domain named {@code name}; with {@code sharedMemory}, its RAM is a shared file. */
    protected abstract String domainXml(String name, boolean sharedMemory);

    /** A definition of a hot standby of {@code pvmXml}: same machine, waiting for an incoming state. */
    protected String incomingStandbyXml(String pvmXml, String name) {
        throw new UnsupportedOperationException("this world has no device state");
    }

    protected Duration eventWait() {
        return Duration.ofSeconds(10);
    }

    protected String name(String what) {
        return "colo-contract-" + what + "-" + ProcessHandle.current().pid() + "-" + SEQ.incrementAndGet();
    }

    private DomainRef define(String xml) {
        DomainRef d = hypervisor().define(xml);
        made.add(d);
        return d;
    }

    @AfterEach
    void removeWhatThisCaseMade() {
        for (DomainRef d : made) {
            try {
                hypervisor().destroy(d);
            } catch (HypervisorException ignored) {
                // already gone
            }
            try {
                hypervisor().undefine(d);
            } catch (HypervisorException ignored) {
                // already gone
            }
        }
        made.clear();
        closeWorld();
    }

    /** Called after each case, once its domains are gone. */
    protected void closeWorld() {
        hv.close();
    }

    @Test
    void aDefinedDomainIsFoundByNameAndUuidListedAndShutOff() {
        String name = name("define");
        DomainRef d = define(domainXml(name, false));
        assertThat(d.name()).isEqualTo(name);
        assertThat(UUID.fromString(d.uuid())).isNotNull();
        assertThat(hypervisor().lookup(name)).contains(d);
        assertThat(hypervisor().lookup(d.uuid())).contains(d);
        assertThat(hypervisor().require(name)).isEqualTo(d);
        assertThat(hypervisor().list()).contains(d);
        assertThat(hypervisor().state(d)).isEqualTo(DomainState.SHUTOFF);
        assertThat(hypervisor().describe(d, true)).contains(name).contains(d.uuid());
    }

    @Test
    void startRunsDestroyStopsTwiceOverAndUndefineForgetsWithEventsForEach() throws Exception {
        List<LifecycleEvent> events = new CopyOnWriteArrayList<>();
        String name = name("life");
        try (AutoCloseable sub = hypervisor().onLifecycle(events::add)) {
            DomainRef d = define(domainXml(name, false));
            hypervisor().start(d, false);
            assertThat(hypervisor().state(d)).isEqualTo(DomainState.RUNNING);
            assertThatThrownBy(() -> hypervisor().start(d, false)).as("starting a running domain")
                    .isInstanceOfSatisfying(HypervisorException.class, e -> assertThat(e.kind()).as(e.getMessage()).isEqualTo(Kind.INVALID_STATE));
            hypervisor().destroy(d);
            hypervisor().destroy(d);
            assertThat(hypervisor().state(d)).isEqualTo(DomainState.SHUTOFF);
            hypervisor().undefine(d);
            assertThat(hypervisor().lookup(name)).isEmpty();
            long deadline = System.nanoTime() + eventWait().toNanos();
            List<LifecycleEvent.Kind> wanted = List.of(LifecycleEvent.Kind.DEFINED, LifecycleEvent.Kind.STARTED, LifecycleEvent.Kind.STOPPED,
                    LifecycleEvent.Kind.UNDEFINED);
            while (System.nanoTime() < deadline && !kindsOf(events, name).containsAll(wanted)) {
                Thread.sleep(20);
            }
            assertThat(kindsOf(events, name)).containsAll(wanted);
        }
    }

    private static List<LifecycleEvent.Kind> kindsOf(List<LifecycleEvent> events, String name) {
        return events.stream().filter(e -> e.domain().name().equals(name)).map(LifecycleEvent::kind).toList();
    }

    @Test
    void aMissingDomainIsATypedErrorNamingIt() {
        String ghost = name("ghost");
        assertThat(hypervisor().lookup(ghost)).isEmpty();
        assertThatThrownBy(() -> hypervisor().require(ghost))
                .isInstanceOfSatisfying(HypervisorException.class, e -> assertThat(e.kind()).isEqualTo(Kind.DOMAIN_NOT_FOUND))
                .hasMessageContaining(ghost);
        DomainRef never = new DomainRef(ghost, UUID.randomUUID().toString());
        assertThatThrownBy(() -> hypervisor().state(never))
                .isInstanceOfSatisfying(HypervisorException.class, e -> assertThat(e.kind()).isEqualTo(Kind.DOMAIN_NOT_FOUND));
    }

    @Test
    void aDomainStartedPausedRunsOnContAndPausesOnStop() {
        assumeTrue(abilities().startPaused() && abilities().qmp(), "this world cannot start paused or speak QMP");
        DomainRef d = define(domainXml(name("pause"), false));
        hypervisor().start(d, true);
        assertThat(hypervisor().state(d)).isEqualTo(DomainState.PAUSED);
        assertThat(hypervisor().qmp(d, "query-status", null, QMP).path("running").asBoolean(true)).isFalse();
        hypervisor().resume(d, QMP);
        assertThat(hypervisor().state(d)).isEqualTo(DomainState.RUNNING);
        assertThat(hypervisor().qmp(d, "query-status", null, QMP).path("status").asText()).isEqualTo("running");
        hypervisor().pause(d, QMP);
        assertThat(hypervisor().state(d)).isEqualTo(DomainState.PAUSED);
    }

    @Test
    void qmpErrorsAreTypedAndQmpOnAStoppedDomainIsInvalidState() {
        assumeTrue(abilities().qmp(), "this world has no QMP");
        DomainRef d = define(domainXml(name("qmp"), false));
        assertThatThrownBy(() -> hypervisor().qmp(d, "query-status", null, QMP))
                .isInstanceOfSatisfying(HypervisorException.class, e -> assertThat(e.kind()).as(e.getMessage()).isEqualTo(Kind.INVALID_STATE));
        hypervisor().start(d, true);
        assertThatThrownBy(() -> hypervisor().qmp(d, "colo-no-such-command", null, QMP))
                .isInstanceOfSatisfying(QmpException.class, e -> assertThat(e.errorClass()).isEqualTo("CommandNotFound"));
    }

    private void copyRam(DomainRef from, DomainRef to) {
        GuestRam src = hypervisor().mapGuestRam(from);
        GuestRam dst = hypervisor().mapGuestRam(to);
        try {
            assertThat(dst.size()).isEqualTo(src.size());
            ByteBuffer buf = ByteBuffer.allocateDirect(src.chunkSize());
            for (long off = 0; off < src.size(); off += buf.capacity()) {
                buf.clear().limit((int) Math.min(buf.capacity(), src.size() - off));
                src.read(off, buf);
                buf.flip();
                dst.write(off, buf);
            }
        } finally {
            src.close();
            dst.close();
        }
    }

    @Test
    void deviceStateIsSavedFromAPausedPvmAndLoadedOnceIntoAnIncomingStandby() {
        assumeTrue(abilities().deviceState(), "this world has no device state");
        String pvmXml = domainXml(name("pvm"), true);
        DomainRef pvm = define(pvmXml);
        hypervisor().start(pvm, false);
        assertThatThrownBy(() -> hypervisor().saveDeviceState(pvm, QMP)).as("a running PVM")
                .isInstanceOfSatisfying(HypervisorException.class, e -> assertThat(e.kind()).as(e.getMessage()).isEqualTo(Kind.INVALID_STATE));
        hypervisor().pause(pvm, QMP);
        DeviceState state = hypervisor().saveDeviceState(pvm, QMP);
        assertThat(state.size()).isPositive();

        DomainRef standby = define(incomingStandbyXml(pvmXml, name("standby")));
        hypervisor().start(standby, true);
        copyRam(pvm, standby); // devices read guest RAM while they load (QEMU's vapic does)
        // QEMU accepts a cont before the state arrived and runs nothing: the loaded guest takes the
        // runstate its source saved, which is paused. So the standby needs its cont after the load.
        hypervisor().resume(standby, QMP);
        assertThat(hypervisor().state(standby)).as("cont before any state arrived runs nothing").isEqualTo(DomainState.PAUSED);
        hypervisor().loadDeviceState(standby, state, QMP);
        assertThat(hypervisor().state(standby)).as("loaded: paused, as its source was").isEqualTo(DomainState.PAUSED);
        hypervisor().resume(standby, QMP);
        assertThat(hypervisor().state(standby)).isEqualTo(DomainState.RUNNING);
        assertThatThrownBy(() -> hypervisor().loadDeviceState(standby, state, QMP)).as("a second load into one process")
                .isInstanceOf(HypervisorException.class);
        assertThat(hypervisor().state(standby).isActive()).as("a standby whose load failed is never left half-started").isFalse();
        assertThat(hypervisor().state(pvm)).isEqualTo(DomainState.PAUSED);
        hypervisor().resume(pvm, QMP);
        assertThat(hypervisor().state(pvm)).isEqualTo(DomainState.RUNNING);
    }

    @Test
    void aReusableSvmTakesCheckpointsInPlaceAndRunsOnAfterItsRelease() {
        assumeTrue(abilities().deviceState(), "this world has no device state");
        String pvmXml = domainXml(name("pvm"), true);
        DomainRef pvm = define(pvmXml);
        hypervisor().start(pvm, false);
        assertThatThrownBy(() -> hypervisor().saveDevices(pvm, QMP)).as("a devices-only save of a running PVM")
                .isInstanceOfSatisfying(HypervisorException.class, e -> assertThat(e.kind()).as(e.getMessage()).isEqualTo(Kind.INVALID_STATE));
        hypervisor().pause(pvm, QMP);
        DeviceState full = hypervisor().saveDeviceState(pvm, QMP);

        DomainRef standby = define(incomingStandbyXml(pvmXml, name("svm")));
        hypervisor().start(standby, true);
        copyRam(pvm, standby);
        ReusableSvm svm = hypervisor().loadReusable(standby, full, QMP);
        assertState(standby, DomainState.RUNNING, "a reusable SVM runs as soon as it loaded");
        for (int i = 0; i < 3; i++) {
            hypervisor().resume(pvm, QMP);
            hypervisor().pause(pvm, QMP);
            DeviceState devices = hypervisor().saveDevices(pvm, QMP);
            assertThat(devices.size()).isPositive();
            assertThat(hypervisor().state(pvm)).as("a devices-only save leaves the PVM paused").isEqualTo(DomainState.PAUSED);
            svm.stop(QMP);
            assertState(standby, DomainState.PAUSED, "stopped for checkpoint " + i);
            copyRam(pvm, standby);
            svm.load(devices, QMP);
            assertState(standby, DomainState.RUNNING, "runs again after checkpoint " + i);
        }
        svm.release(QMP);
        svm.release(QMP);
        assertState(standby, DomainState.RUNNING, "after its release (failover) the SVM runs on");
        assertThatThrownBy(() -> svm.stop(QMP)).as("a released SVM takes no more checkpoints").isInstanceOf(HypervisorException.class);
        svm.close();
        hypervisor().resume(pvm, QMP);
        assertThat(hypervisor().state(pvm)).isEqualTo(DomainState.RUNNING);
    }

    /**
     * The SVM's COLO channel runs and stops QEMU behind libvirt's back; libvirt's state follows from
     * QEMU's RESUME and STOP events, a moment later on a loaded machine. So the state is asked for
     * until it matches or 5 s pass (in the simulation it matches at once).
     */
    private void assertState(DomainRef domain, DomainState expected, String what) {
        long deadline = System.nanoTime() + 5_000_000_000L;
        DomainState now = hypervisor().state(domain);
        while (now != expected && System.nanoTime() < deadline) {
            try {
                Thread.sleep(10);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                break;
            }
            now = hypervisor().state(domain);
        }
        assertThat(now).as(what).isEqualTo(expected);
    }
}
