package dev.colo.host.libvirt;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.colo.hypervisor.HypervisorException;
import org.junit.jupiter.api.Test;

class DomainXmlTest {
    static final String OPERATOR_XML = """
            <domain type='kvm'>
              <name>web1</name>
              <uuid>11111111-2222-3333-4444-555555555555</uuid>
              <memory unit='KiB'>131072</memory>
              <currentMemory unit='KiB'>131072</currentMemory>
              <vcpu>1</vcpu>
              <os><type arch='x86_64' machine='pc'>hvm</type></os>
              <devices>
                <interface type='bridge'><mac address='52:54:00:aa:bb:cc'/><source bridge='br0'/><model type='virtio'/></interface>
                <interface type='network'><mac address='52:54:00:aa:bb:dd'/><source network='default'/></interface>
              </devices>
            </domain>
            """;

    @Test
    void readsIdentityMemoryAndMacs() {
        DomainXml x = DomainXml.parse(OPERATOR_XML);
        assertThat(x.name()).isEqualTo("web1");
        assertThat(x.uuid()).contains("11111111-2222-3333-4444-555555555555");
        assertThat(x.accelerator()).isEqualTo("kvm");
        assertThat(x.memoryBytes()).isEqualTo(128L << 20);
        assertThat(x.macAddresses()).containsExactly("52:54:00:aa:bb:cc", "52:54:00:aa:bb:dd");
        assertThat(x.hasSharedFileMemory()).isFalse();
    }

    @Test
    void derivesPrimaryWithSharedMemoryAndOneProxyNicKeepingTheMac() {
        DomainXml pvm = DomainXml.parse(OPERATOR_XML).withSharedFileMemory().withProxyNic("52:54:00:aa:bb:cc", "127.0.0.1", 7100);
        String xml = pvm.toXml();
        assertThat(pvm.hasSharedFileMemory()).isTrue();
        assertThat(pvm.macAddresses()).containsExactly("52:54:00:aa:bb:cc");
        assertThat(xml).contains("<interface type=\"client\">").contains("port=\"7100\"").doesNotContain("br0");
        // memoryBacking sits right after currentMemory, where libvirt's schema expects it.
        assertThat(xml.indexOf("<memoryBacking>")).isGreaterThan(xml.indexOf("<currentMemory"));
        assertThat(xml.indexOf("<memoryBacking>")).isLessThan(xml.indexOf("<vcpu>"));
        // Idempotent: deriving twice gives one memoryBacking.
        String twice = DomainXml.parse(xml).withSharedFileMemory().toXml();
        assertThat(twice.split("<memoryBacking>", -1)).hasSize(2);
    }

    @Test
    void derivesStandbyWithNewIdentityAndIncomingDefer() {
        DomainXml svm = DomainXml.parse(OPERATOR_XML).withName("web1-svm").withUuid("99999999-2222-3333-4444-555555555555")
                .withAccelerator("qemu").asIncomingStandby();
        String xml = svm.toXml();
        assertThat(svm.name()).isEqualTo("web1-svm");
        assertThat(svm.uuid()).contains("99999999-2222-3333-4444-555555555555");
        assertThat(svm.accelerator()).isEqualTo("qemu");
        assertThat(xml).contains("http://libvirt.org/schemas/domain/qemu/1.0").contains("value=\"-incoming\"").contains("value=\"defer\"");
        assertThat(DomainXml.parse(xml).asIncomingStandby().toXml().split("-incoming", -1)).hasSize(2);
        // The operator's original stays untouched.
        assertThat(DomainXml.parse(OPERATOR_XML).toXml()).doesNotContain("incoming");
    }

    @Test
    void rejectsWhatIsNotADomainWithAClearMessage() {
        assertThatThrownBy(() -> DomainXml.parse("<network><name>x</name></network>"))
                .isInstanceOf(HypervisorException.class).hasMessageContaining("root element is <network>");
        assertThatThrownBy(() -> DomainXml.parse("<domain><name>x</name"))
                .isInstanceOf(HypervisorException.class).hasMessageContaining("malformed domain XML");
        assertThatThrownBy(() -> DomainXml.parse("<!DOCTYPE d [<!ENTITY e SYSTEM 'file:///etc/passwd'>]><domain>&e;</domain>"))
                .isInstanceOf(HypervisorException.class);
    }

    @Test
    void writableDisksAreListedAndReadOnlyOnesAndCdromsAreNot() {
        DomainXml x = DomainXml.parse("<domain type='qemu'><name>db</name><memory unit='MiB'>256</memory><devices>"
                + "<disk type='file' device='disk'><source file='/var/lib/libvirt/images/root.img'/><target dev='vda' bus='virtio'/><readonly/></disk>"
                + "<disk type='file' device='disk'><driver name='qemu' type='qcow2'/><source file='/var/lib/libvirt/images/data.qcow2'/>"
                + "<target dev='vdb' bus='virtio'/></disk>"
                + "<disk type='file' device='cdrom'><target dev='sda' bus='sata'/></disk>"
                + "</devices></domain>");
        assertThat(x.writableDisks()).containsExactly("vdb (/var/lib/libvirt/images/data.qcow2)");
        assertThat(DomainXml.parse(OPERATOR_XML).writableDisks()).isEmpty();
    }

    static final String APP_XML = "<domain type='qemu'><name>db</name><memory unit='MiB'>256</memory><os><type machine='pc'>hvm</type></os>"
            + "<devices>"
            + "<disk type='file' device='disk'><driver name='qemu' type='raw'/><source file='/images/root.img'/><target dev='vda' bus='virtio'/>"
            + "<readonly/><address type='pci' domain='0x0000' bus='0x00' slot='0x04' function='0x0'/></disk>"
            + "<disk type='file' device='disk'><driver name='qemu' type='qcow2'/><source file='/images/data.qcow2'/><target dev='vdb' bus='virtio'/>"
            + "<alias name='virtio-disk1'/><address type='pci' domain='0x0000' bus='0x00' slot='0x05' function='0x0'/></disk>"
            + "<interface type='bridge'><mac address='52:54:00:aa:bb:cc'/><source bridge='br0'/><model type='virtio'/>"
            + "<address type='pci' domain='0x0000' bus='0x00' slot='0x03' function='0x0'/></interface>"
            + "</devices></domain>";

    @Test
    void describesEachDiskWithItsAddressFormatAndAlias() {
        var disks = DomainXml.parse(APP_XML).disks();
        assertThat(disks).extracting(DomainXml.Disk::target).containsExactly("vda", "vdb");
        DomainXml.Disk vdb = disks.get(1);
        assertThat(vdb.writable()).isTrue();
        assertThat(disks.get(0).writable()).isFalse();
        assertThat(vdb.format()).isEqualTo("qcow2");
        assertThat(vdb.type()).isEqualTo("file");
        assertThat(vdb.bus()).isEqualTo("virtio");
        assertThat(vdb.pciAddress()).isEqualTo("0:5.0");
        assertThat(DomainXml.parse(APP_XML).diskAlias("vdb")).contains("virtio-disk1");
        assertThat(DomainXml.parse(APP_XML).diskAlias("vdz")).isEmpty();
    }

    @Test
    void anSvmDiskIsQemusReplicationDriverOverTwoOverlaysAtThePvmsAddress() {
        DomainXml svm = DomainXml.parse(APP_XML).withProxyNic("52:54:00:aa:bb:cc", "127.0.0.1", 7100)
                .withReplicatedDisk("vdb", java.nio.file.Path.of("/d/vdb.raw"), java.nio.file.Path.of("/d/a.qcow2"), java.nio.file.Path.of("/d/h.qcow2"));
        String xml = svm.toXml();
        // vdb left libvirt's devices; vda (read-only, identical on both hosts) stays.
        assertThat(xml).contains("/images/root.img").doesNotContain("/images/data.qcow2");
        assertThat(xml).contains("if=none,id=colo-base-vdb,driver=raw,file.driver=file,file.filename=/d/vdb.raw,file.locking=off");
        assertThat(xml).contains("id=colo-vdb,driver=replication,mode=secondary,top-id=colo-vdb,file.driver=qcow2,file.file.filename=/d/a.qcow2,"
                + "file.backing.driver=qcow2,file.backing.file.filename=/d/h.qcow2,file.backing.backing=colo-base-vdb");
        assertThat(xml).contains("virtio-blk-pci,drive=colo-vdb,id=colo-disk-vdb,bus=pci.0,addr=0x5");
        // The NIC keeps its slot, so libvirt cannot give the freed one to another device.
        assertThat(xml).contains("slot=\"0x03\"");
        // The SVM's domain, read back, says which disk is colo's (a survivor must not be paired as if diskless).
        var again = DomainXml.parse(xml).disks();
        assertThat(again).extracting(DomainXml.Disk::target).containsExactly("vda", "vdb");
        assertThat(again.get(1).type()).isEqualTo(DomainXml.COLO_REPLICA_TYPE);
    }

    @Test
    void aDiskOffVirtioOrWithoutAddressOrWithACommaInAPathIsRefused() {
        java.nio.file.Path p = java.nio.file.Path.of("/d/x");
        assertThatThrownBy(() -> DomainXml.parse(APP_XML.replace("<target dev='vdb' bus='virtio'/>", "<target dev='vdb' bus='sata'/>"))
                .withReplicatedDisk("vdb", p, p, p)).hasMessageContaining("virtio disks only");
        assertThatThrownBy(() -> DomainXml.parse(APP_XML.replace("<alias name='virtio-disk1'/><address type='pci' domain='0x0000' bus='0x00' "
                + "slot='0x05' function='0x0'/>", "")).withReplicatedDisk("vdb", p, p, p)).hasMessageContaining("no PCI address");
        assertThatThrownBy(() -> DomainXml.parse(APP_XML).withReplicatedDisk("vdb", java.nio.file.Path.of("/d/a,b"), p, p))
                .hasMessageContaining("comma");
        assertThatThrownBy(() -> DomainXml.parse(APP_XML).withReplicatedDisk("vdc", p, p, p)).hasMessageContaining("no disk 'vdc'");
    }

    @Test
    void aDirectMonitorIsAddedOnceAndFoundAgain() {
        java.nio.file.Path sock = java.nio.file.Path.of("/run/colo/qmp/colo-monitor-web1.sock");
        DomainXml x = DomainXml.parse(OPERATOR_XML).withDirectMonitor(sock).asIncomingStandby();
        assertThat(x.toXml()).contains("value=\"-qmp\"").contains("unix:/run/colo/qmp/colo-monitor-web1.sock,server=on,wait=off");
        assertThat(x.directMonitor()).contains(sock);
        java.nio.file.Path other = java.nio.file.Path.of("/run/colo/qmp/colo-monitor-web2.sock");
        DomainXml again = x.withDirectMonitor(other);
        assertThat(again.directMonitor()).contains(other);
        assertThat(again.toXml().split("-qmp", -1)).hasSize(2);
        assertThat(DomainXml.parse(OPERATOR_XML).directMonitor()).isEmpty();
        assertThatThrownBy(() -> DomainXml.parse(OPERATOR_XML).withDirectMonitor(java.nio.file.Path.of("/run/x.sock")))
                .hasMessageContaining("colo-monitor-");
    }
}
