package dev.colo.daemon.node;

import static org.assertj.core.api.Assertions.assertThat;

import dev.colo.host.libvirt.DomainXml;
import java.util.List;
import org.junit.jupiter.api.Test;

/** What colo replicates and how it says no: one sentence per refused disk, naming what to do. */
class DiskCheckTest {
    static DomainXml.Disk disk(String target, String device, String bus, String type, String source, String format, boolean readOnly,
            boolean shareable) {
        return new DomainXml.Disk(target, device, bus, type, source, format, readOnly, shareable, "0:5.0", "");
    }

    static DiskCheck.Result check(DomainXml.Disk... disks) {
        return DiskCheck.check(List.of(disks), p -> !p.toString().contains("missing"));
    }

    @Test
    void replicatesWritableVirtioFileAndBlockDisksInRawOrQcow2AndSkipsReadOnlyOnes() {
        DiskCheck.Result r = check(disk("vda", "disk", "virtio", "file", "/i/root.img", "raw", true, false),
                disk("vdb", "disk", "virtio", "file", "/i/data.qcow2", "qcow2", false, false),
                disk("vdc", "disk", "virtio", "block", "/dev/vg/data", "raw", false, false),
                disk("sda", "cdrom", "sata", "file", "/i/x.iso", "raw", false, false));
        assertThat(r.refusals()).isEmpty();
        assertThat(r.replicated()).extracting(DomainXml.Disk::target).containsExactly("vdb", "vdc");
    }

    @Test
    void refusesWhatCannotFollowTheVmWithWhatToDo() {
        DiskCheck.Result r = check(disk("vdb", "disk", "virtio", "file", "/i/d.img", "raw", false, true),
                disk("sdb", "lun", "scsi", "block", "/dev/sdb", "raw", false, false),
                disk("vdc", "disk", "virtio", "network", "pool/img", "raw", false, false),
                disk("hda", "disk", "ide", "file", "/i/h.img", "raw", false, false),
                disk("vdd", "disk", "virtio", "file", "/i/v.vmdk", "vmdk", false, false),
                disk("vde", "disk", "virtio", "file", "/i/missing.qcow2", "qcow2", false, false),
                disk("vdf", "disk", "virtio", DomainXml.COLO_REPLICA_TYPE, "-drive ...", "", false, false));
        assertThat(r.replicated()).isEmpty();
        assertThat(r.refusals()).hasSize(7);
        assertThat(r.refusals().get(0)).contains("<shareable/>").contains("detach it");
        assertThat(r.refusals().get(1)).contains("passthrough").contains("device='disk'");
        assertThat(r.refusals().get(2)).contains("type 'network'");
        assertThat(r.refusals().get(3)).contains("bus 'ide'").contains("bus='virtio'");
        assertThat(r.refusals().get(4)).contains("format 'vmdk'").contains("qemu-img");
        assertThat(r.refusals().get(5)).contains("no image at '/i/missing.qcow2'");
        assertThat(r.refusals().get(6)).contains("SVM that took over").contains("qemu-img convert");
        r.refusals().forEach(line -> assertThat(line).doesNotContain("\n"));
    }
}
