package dev.colo.testkit;

import dev.colo.testkit.contract.HypervisorContract;

/** The hypervisor contract against the simulated hypervisor that the simulations run on. */
class SimulatedHypervisorContractTest extends HypervisorContract {
    SimulatedHypervisorContractTest() {
        super(new SimulatedHypervisor(), new Abilities(true, true, true));
    }

    @Override
    protected String domainXml(String name, boolean sharedMemory) {
        return "<domain type='qemu' xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'><name>" + name + "</name>"
                + "<memory unit='MiB'>4</memory>"
                + (sharedMemory ? "<memoryBacking><source type='file'/><access mode='shared'/></memoryBacking>" : "")
                + "</domain>";
    }

    @Override
    protected String incomingStandbyXml(String pvmXml, String name) {
        return pvmXml.replaceFirst("<name>[^<]*</name>", "<name>" + name + "</name>")
                .replace("</domain>", "<qemu:commandline><qemu:arg value='-incoming'/><qemu:arg value='defer'/></qemu:commandline></domain>");
    }
}
