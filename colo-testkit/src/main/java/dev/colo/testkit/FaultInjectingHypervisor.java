package dev.colo.testkit;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.colo.hypervisor.DeviceState;
import dev.colo.hypervisor.DomainRef;
import dev.colo.hypervisor.DomainState;
import dev.colo.hypervisor.GuestRam;
import dev.colo.hypervisor.Hypervisor;
import dev.colo.hypervisor.HypervisorException;
import dev.colo.hypervisor.LifecycleListener;
import dev.colo.hypervisor.ReusableSvm;
import java.time.Duration;
import java.util.List;
import java.util.Optional;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;

/**
 * Any hypervisor, real or simulated, with faults a test can switch on: a QMP command on a domain
 * that gets no answer (it fails with {@link HypervisorException.Kind#TIMEOUT} without reaching the
 * domain, as a hung QEMU monitor would). Everything else passes through.
 */
public final class FaultInjectingHypervisor implements Hypervisor {
    private final Hypervisor real;
    private final Set<String> timeouts = ConcurrentHashMap.newKeySet();

    public FaultInjectingHypervisor(Hypervisor real) {
        this.real = real;
    }

    /** QMP {@code command} on the domain called {@code domain} times out until {@link #clearFaults()}. */
    public void timeOut(String domain, String command) {
        timeouts.add(domain + ":" + command);
    }

    public void clearFaults() {
        timeouts.clear();
    }

    private void maybeTimeOut(DomainRef d, String command, Duration timeout) {
        if (timeouts.contains(d.name() + ":" + command)) {
            throw new HypervisorException(HypervisorException.Kind.TIMEOUT,
                    "QMP " + command + " on " + d.name() + " got no answer within " + timeout.toMillis() + " ms (injected)");
        }
    }

    @Override
    public DomainRef define(String domainXml) {
        return real.define(domainXml);
    }

    @Override
    public void start(DomainRef domain, boolean paused) {
        real.start(domain, paused);
    }

    @Override
    public void destroy(DomainRef domain) {
        real.destroy(domain);
    }

    @Override
    public void undefine(DomainRef domain) {
        real.undefine(domain);
    }

    @Override
    public Optional<DomainRef> lookup(String nameOrUuid) {
        return real.lookup(nameOrUuid);
    }

    @Override
    public DomainState state(DomainRef domain) {
        return real.state(domain);
    }

    @Override
    public List<DomainRef> list() {
        return real.list();
    }

    @Override
    public String describe(DomainRef domain, boolean inactive) {
        return real.describe(domain, inactive);
    }

    @Override
    public AutoCloseable onLifecycle(LifecycleListener listener) {
        return real.onLifecycle(listener);
    }

    @Override
    public JsonNode qmp(DomainRef domain, String command, ObjectNode arguments, Duration timeout) {
        maybeTimeOut(domain, command, timeout);
        return real.qmp(domain, command, arguments, timeout);
    }

    @Override
    public void pause(DomainRef domain, Duration timeout) {
        maybeTimeOut(domain, "stop", timeout);
        real.pause(domain, timeout);
    }

    @Override
    public void resume(DomainRef domain, Duration timeout) {
        maybeTimeOut(domain, "cont", timeout);
        real.resume(domain, timeout);
    }

    @Override
    public void prepareCheckpoint(DomainRef domain, Duration timeout) {
        real.prepareCheckpoint(domain, timeout);
    }

    @Override
    public DeviceState saveDeviceState(DomainRef domain, Duration timeout) {
        maybeTimeOut(domain, "migrate", timeout);
        return real.saveDeviceState(domain, timeout);
    }

    @Override
    public void loadDeviceState(DomainRef standby, DeviceState state, Duration timeout) {
        maybeTimeOut(standby, "migrate-incoming", timeout);
        real.loadDeviceState(standby, state, timeout);
    }

    @Override
    public DeviceState saveDevices(DomainRef domain, Duration timeout) {
        maybeTimeOut(domain, "xen-save-devices-state", timeout);
        return real.saveDevices(domain, timeout);
    }

    @Override
    public ReusableSvm loadReusable(DomainRef standby, DeviceState full, Duration timeout) {
        maybeTimeOut(standby, "migrate-incoming", timeout);
        ReusableSvm svm = real.loadReusable(standby, full, timeout);
        return new ReusableSvm() {
            @Override
            public DomainRef domain() {
                return svm.domain();
            }

            @Override
            public void stop(Duration t) {
                maybeTimeOut(standby, "colo-stop", t);
                svm.stop(t);
            }

            @Override
            public void load(DeviceState devices, Duration t) {
                maybeTimeOut(standby, "colo-load", t);
                svm.load(devices, t);
            }

            @Override
            public void release(Duration t) {
                svm.release(t);
            }

            @Override
            public void close() {
                svm.close();
            }
        };
    }

    @Override
    public GuestRam mapGuestRam(DomainRef domain) {
        return real.mapGuestRam(domain);
    }

    @Override
    public long diskSize(DomainRef domain, String target, Duration timeout) {
        maybeTimeOut(domain, "query-block", timeout);
        return real.diskSize(domain, target, timeout);
    }

    @Override
    public dev.colo.hypervisor.DiskMirror mirrorDisk(DomainRef domain, String target, dev.colo.hypervisor.MirrorTarget to, Duration timeout) {
        maybeTimeOut(domain, "blockdev-mirror", timeout);
        return real.mirrorDisk(domain, target, to, timeout);
    }

    @Override
    public void createOverlay(java.nio.file.Path file, long sizeBytes) {
        real.createOverlay(file, sizeBytes);
    }

    @Override
    public String guestUser() {
        return real.guestUser();
    }

    @Override
    public void close() {
        real.close();
    }
}
