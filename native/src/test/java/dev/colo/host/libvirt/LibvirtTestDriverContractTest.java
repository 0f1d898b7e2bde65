package dev.colo.host.libvirt;

import dev.colo.testkit.contract.HypervisorContract;
import java.util.UUID;

/**
 * The hypervisor contract through the real libvirt binding against libvirt's in-process
 * {@code test:///default} driver: lifecycle, lookup, errors and events. It has no QEMU behind it,
 * so it cannot start paused, speak QMP or move device state; those cases run on real QEMU
 * ({@code HypervisorContractIT} in colo-lab).
 */
class LibvirtTestDriverContractTest extends HypervisorContract {
    LibvirtTestDriverContractTest() {
        super(new LibvirtHypervisor("test:///default"), new Abilities(false, false, false));
    }

    @Override
    protected String domainXml(String name, boolean sharedMemory) {
        return "<domain type='test'><name>" + name + "</name><uuid>" + UUID.randomUUID() + "</uuid>"
                + "<memory unit='MiB'>64</memory><os><type>hvm</type></os></domain>";
    }
}
