package dev.colo.daemon.node;

import dev.colo.checkpoint.link.proto.PairRequest;
import dev.colo.daemon.config.DaemonConfig;
import dev.colo.host.libvirt.DomainXml;
import dev.colo.host.libvirt.LibvirtHypervisor;

/**
 * The libvirt definitions colo derives: a PVM is the operator's domain with its RAM in a shared
 * file the daemon maps and its NIC a socket to the local proxy; a standby is the PVM's definition
 * renamed, waiting for device state ({@code -incoming defer}), with its NIC on its own socket.
 */
final class DomainShaper {
    private final DaemonConfig cfg;

    DomainShaper(DaemonConfig cfg) {
        this.cfg = cfg;
    }

    /** Where a PVM's QEMU listens for colo's direct QMP monitor (QEMU makes the socket, as its own user). */
    static final java.nio.file.Path MONITOR_DIR = java.nio.file.Path.of("/run/colo/qmp");

    /**
     * The PVM as {@code current} must look: shared-file RAM, NIC {@code mac} through the proxy, and
     * a direct QMP monitor for the checkpoint's stop, save and cont.
     */
    DomainXml pvm(DomainXml current, String mac) {
        return accelerated(current.withSharedFileMemory().withProxyNic(mac, "127.0.0.1", cfg.vm().proxyPort())
                .withDirectMonitor(MONITOR_DIR.resolve(DomainXml.DIRECT_MONITOR_PREFIX + current.name() + ".sock")));
    }

    /** Whether the running domain already has the PVM's shape (no restart needed). */
    static boolean shapedAsPvm(DomainXml running) {
        return running.hasSharedFileMemory() && running.directMonitor().isPresent();
    }

    /** Standby number {@code n} of one pairing (run {@code runId}). */
    String standbyName(String vm, String runId, long n) {
        return vm + "-colo-svm-" + runId + "-" + n;
    }

    /** The prefix every standby of {@code vm} has, for sweeping leftovers. */
    String standbyPrefix(String vm) {
        return vm + "-colo-svm-";
    }

    String standby(PairRequest req, String name, int nicPort) {
        // Its own monitor socket: the PVM's path is the PVM's (and on a lab machine, the same file).
        DomainXml x = DomainXml.parse(req.getDomainXml()).withName(name).withUuid(LibvirtHypervisor.newUuid()).asIncomingStandby()
                .withProxyNic(req.getMac(), "127.0.0.1", nicPort).withDirectMonitor(MONITOR_DIR.resolve(DomainXml.DIRECT_MONITOR_PREFIX + name + ".sock"));
        return accelerated(x).toXml();
    }

    /** [libvirt] accelerator, when set, as libvirt's domain type (tcg is type 'qemu'). */
    private DomainXml accelerated(DomainXml x) {
        return cfg.libvirt().accelerator().map(a -> x.withAccelerator(a.equals("kvm") ? "kvm" : "qemu")).orElse(x);
    }
}
