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

    /** The PVM as {@code current} must look: shared-file RAM, NIC {@code mac} through the proxy. */
    DomainXml pvm(DomainXml current, String mac) {
        return accelerated(current.withSharedFileMemory().withProxyNic(mac, "127.0.0.1", cfg.vm().proxyPort()));
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
        DomainXml x = DomainXml.parse(req.getDomainXml()).withName(name).withUuid(LibvirtHypervisor.newUuid()).asIncomingStandby()
                .withProxyNic(req.getMac(), "127.0.0.1", nicPort);
        return accelerated(x).toXml();
    }

    /** [libvirt] accelerator, when set, as libvirt's domain type (tcg is type 'qemu'). */
    private DomainXml accelerated(DomainXml x) {
        return cfg.libvirt().accelerator().map(a -> x.withAccelerator(a.equals("kvm") ? "kvm" : "qemu")).orElse(x);
    }
}
