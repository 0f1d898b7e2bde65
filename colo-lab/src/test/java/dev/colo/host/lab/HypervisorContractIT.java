package dev.colo.host.lab;

import dev.colo.host.libvirt.DomainXml;
import dev.colo.host.libvirt.LibvirtHypervisor;
import dev.colo.lab.Lab;
import dev.colo.lab.LabLan;
import dev.colo.lab.TestGuest;
import dev.colo.testkit.contract.HypervisorContract;
import org.junit.jupiter.api.BeforeAll;

/** The hypervisor contract on real QEMU under the lab's libvirtd (qemu:///system, TCG). */
class HypervisorContractIT extends HypervisorContract {
    HypervisorContractIT() {
        super(new LibvirtHypervisor("qemu:///system"), new Abilities(true, true, true));
    }

    @BeforeAll
    static void lab() {
        Lab.require();
    }

    @Override
    protected String domainXml(String name, boolean sharedMemory) {
        // No NIC: the contract is about the hypervisor, not the guest's network.
        return TestGuest.locate().domainXml(name, 128, LabLan.GUEST_CIDR, "", sharedMemory, null);
    }

    @Override
    protected String incomingStandbyXml(String pvmXml, String name) {
        return DomainXml.parse(pvmXml).withName(name).withUuid(LibvirtHypervisor.newUuid()).asIncomingStandby().toXml();
    }
}
