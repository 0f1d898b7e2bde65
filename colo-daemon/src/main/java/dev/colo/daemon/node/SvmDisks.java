package dev.colo.daemon.node;

import dev.colo.checkpoint.disk.ReplicaDisk;
import dev.colo.checkpoint.link.proto.ReplicatedDisk;
import dev.colo.host.libvirt.DomainXml;
import dev.colo.hypervisor.Hypervisor;
import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;

/**
 * The secondary's side of disk replication for one pairing: a copy of each writable disk of the
 * PVM ({@code DIR/VM/TARGET-RUN.raw}), and per standby the two overlays QEMU's replication driver
 * keeps the SVM's own writes in ({@code DIR/VM/STANDBY-TARGET-active.qcow2}, {@code -hidden}).
 * The files of an SVM that took over stay: they are the VM's disk now.
 */
final class SvmDisks implements AutoCloseable {
    /** The pairing cannot be accepted: one sentence for the primary's operator. */
    static final class Refused extends Exception {
        Refused(String why) {
            super(why);
        }
    }

    private final Hypervisor hv;
    private final DiskHost host;
    private final Path dir;
    private final Map<String, ReplicaDisk> copies;
    private final Map<String, List<Path>> overlays = new ConcurrentHashMap<>();
    private volatile String keptStandby;

    private SvmDisks(Hypervisor hv, DiskHost host, Path dir, Map<String, ReplicaDisk> copies) {
        this.hv = hv;
        this.host = host;
        this.dir = dir;
        this.copies = copies;
    }

    /** Makes an empty copy of every disk of {@code req}, or says why it cannot. */
    static SvmDisks create(Hypervisor hv, DiskHost host, Path disksDir, String vm, String runId, List<ReplicatedDisk> disks) throws Refused {
        Path dir = disksDir.resolve(vm);
        Map<String, ReplicaDisk> made = new LinkedHashMap<>();
        try {
            host.createDirectory(dir);
            long need = 0;
            for (ReplicatedDisk d : disks) {
                need += d.getSizeBytes();
            }
            long free = host.usableSpace(dir);
            if (free < need) {
                throw new Refused("the secondary cannot hold the VM's disks: " + dir + " has " + gib(free) + " free, the disks need " + gib(need)
                        + " (" + disks.size() + " disk(s)); free space there or set [disks] dir on the secondary");
            }
            for (ReplicatedDisk d : disks) {
                Path file = dir.resolve(d.getTarget() + "-" + runId + ".raw");
                host.delete(file);
                made.put(d.getTarget(), host.createCopy(d.getTarget(), file, d.getSizeBytes(), hv.guestUser()));
            }
            return new SvmDisks(hv, host, dir, made);
        } catch (IOException e) {
            new SvmDisks(hv, host, dir, made).close();
            throw new Refused("the secondary cannot make its copy of the VM's disks in " + dir + ": " + e.getMessage());
        }
    }

    private static String gib(long bytes) {
        return String.format("%.1f GiB", bytes / (double) (1L << 30));
    }

    Map<String, ReplicaDisk> copies() {
        return copies;
    }

    /** {@code xml} with each replicated disk as standby {@code name}'s: its own empty overlays over the copy. */
    DomainXml standby(DomainXml xml, String name) {
        List<Path> made = new ArrayList<>();
        DomainXml out = xml;
        for (ReplicaDisk copy : copies.values()) {
            Path active = dir.resolve(name + "-" + copy.name() + "-active.qcow2");
            Path hidden = dir.resolve(name + "-" + copy.name() + "-hidden.qcow2");
            hv.createOverlay(hidden, copy.size());
            made.add(hidden);
            hv.createOverlay(active, copy.size());
            made.add(active);
            out = out.withReplicatedDisk(copy.name(), copy.path(), active, hidden);
        }
        overlays.put(name, made);
        return out;
    }

    /** Standby {@code name} is gone: its overlays go too, unless it took over. */
    void retired(String name) {
        if (name.equals(keptStandby)) {
            return;
        }
        List<Path> files = overlays.remove(name);
        if (files != null) {
            files.forEach(host::delete);
        }
    }

    /** SVM {@code name} took over: its overlays and the copies are its disks now and stay. */
    void keep(String name) {
        keptStandby = name;
    }

    /** The pairing is over: unless an SVM took over, every file goes. */
    @Override
    public void close() {
        for (ReplicaDisk c : copies.values()) {
            c.close();
            if (keptStandby == null) {
                host.delete(c.path());
            }
        }
        if (keptStandby == null) {
            overlays.values().forEach(files -> files.forEach(host::delete));
            overlays.clear();
        }
    }
}
