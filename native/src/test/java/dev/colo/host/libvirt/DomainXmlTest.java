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
}
