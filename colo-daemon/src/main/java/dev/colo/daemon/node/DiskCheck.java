package dev.colo.daemon.node;

import dev.colo.host.libvirt.DomainXml;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.function.Predicate;

/**
 * Which disks of a domain colo replicates, and why it refuses the others: pure rules over the
 * domain's {@code <disk>} elements, each refusal one sentence saying what to do.
 */
final class DiskCheck {
    private DiskCheck() {
    }

    /** The writable disks, or the reasons colo cannot protect the domain (empty list of reasons when fine). */
    record Result(List<DomainXml.Disk> replicated, List<String> refusals) {}

    /** @param exists whether a disk image file is there (the host's file system, or a test's) */
    static Result check(List<DomainXml.Disk> disks, Predicate<Path> exists) {
        List<DomainXml.Disk> replicated = new ArrayList<>();
        List<String> refusals = new ArrayList<>();
        for (DomainXml.Disk d : disks) {
            if (d.shareable()) {
                refusals.add("disk " + d + " is <shareable/>: other VMs write it too, so no copy of it can follow the VM; detach it");
                continue;
            }
            if (!d.writable()) {
                continue;
            }
            if (d.type().equals(DomainXml.COLO_REPLICA_TYPE)) {
                refusals.add("disk " + d.target() + " is the replicated disk of an SVM that took over (QEMU's replication driver on its "
                        + "command line, its data in colo's copy and overlays); colo cannot pair it again in place yet: shut the VM down, "
                        + "define it with one image made from that disk (qemu-img convert), and pair that domain");
            } else if (d.device().equals("lun")) {
                refusals.add("disk " + d + " is a passthrough LUN (device='lun'): SCSI commands reach the host's device directly and cannot be "
                        + "replicated; use device='disk'");
            } else if (!d.type().equals("file") && !d.type().equals("block")) {
                refusals.add("disk " + d + " is of type '" + d.type() + "': colo replicates file and block disks only");
            } else if (!d.bus().equals("virtio")) {
                refusals.add("disk " + d + " is on bus '" + d.bus() + "': colo replicates virtio disks only; use <target bus='virtio'/>");
            } else if (!d.format().isEmpty() && !d.format().equals("raw") && !d.format().equals("qcow2")) {
                refusals.add("disk " + d + " has format '" + d.format() + "': colo replicates raw and qcow2 disks only (convert it with qemu-img)");
            } else if (d.source().isEmpty() || !exists.test(Path.of(d.source()))) {
                refusals.add("disk " + d.target() + " has no image at '" + d.source() + "': create it, or fix <source> in the domain");
            } else {
                replicated.add(d);
            }
        }
        return new Result(replicated, refusals);
    }
}
