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
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The secondary's side of disk replication for one pairing: a copy of each writable disk of the
 * PVM ({@code DIR/VM/TARGET-LINEAGE.raw}), and per standby the two overlays QEMU's replication
 * driver keeps the SVM's own writes in ({@code DIR/VM/STANDBY-TARGET-active.qcow2}, {@code -hidden}).
 *
 * <p>A copy belongs to a lineage: the primary's mirror of the disks since it last copied them whole.
 * The file {@code DIR/VM/lineage} says which, and whether the copy is complete (a checkpoint
 * committed on it). A complete copy outlives its pairing (a lost link, a restart of either daemon):
 * a later pairing in the same lineage resumes it, the primary shipping the writes it kept since,
 * instead of copying the whole disk again. It goes when a new lineage replaces it or the operator
 * unpairs. The files of an SVM that took over stay: they are the VM's disk now, no copy of anything.
 */
final class SvmDisks implements AutoCloseable {
    private static final Logger log = LoggerFactory.getLogger(SvmDisks.class);

    /** The pairing cannot be accepted: one sentence for the primary's operator. */
    static final class Refused extends Exception {
        Refused(String why) {
            super(why);
        }
    }

    private final Hypervisor hv;
    private final DiskHost host;
    private final Path dir;
    private final String lineage;
    private final boolean resumed;
    private final Map<String, ReplicaDisk> copies;
    private final Map<String, List<Path>> overlays = new ConcurrentHashMap<>();
    private volatile String keptStandby;
    private volatile boolean complete;

    private SvmDisks(Hypervisor hv, DiskHost host, Path dir, String lineage, boolean resumed, Map<String, ReplicaDisk> copies) {
        this.hv = hv;
        this.host = host;
        this.dir = dir;
        this.lineage = lineage;
        this.resumed = resumed;
        this.copies = copies;
        this.complete = resumed;
    }

    /**
     * The copies of {@code disks} for a pairing in {@code lineage}: the kept ones when
     * {@code resume} and this host holds a complete copy of that lineage, else new empty ones (the
     * files of any other lineage go). Blocking; says why when it cannot.
     */
    static SvmDisks open(Hypervisor hv, DiskHost host, Path disksDir, String vm, String lineage, boolean resume, List<ReplicatedDisk> disks)
            throws Refused {
        Path dir = disksDir.resolve(vm);
        Map<String, ReplicaDisk> made = new LinkedHashMap<>();
        try {
            host.createDirectory(dir);
            String marker = host.readText(dir.resolve("lineage"));
            if (marker != null && marker.startsWith("took-over")) {
                throw new Refused("this host's copy of the VM's disks in " + dir + " became the disk of an SVM that took over (" + marker
                        + "); it is the VM's data: move it away (or delete it once that VM is gone) before pairing again");
            }
            // Overlays left by standbys of earlier runs (a daemon killed with them) are nobody's now.
            for (Path p : host.list(dir)) {
                if (p.getFileName().toString().endsWith(".qcow2")) {
                    host.delete(p);
                }
            }
            if (resume && ("lineage=" + lineage + " complete").equals(marker)) {
                try {
                    for (ReplicatedDisk d : disks) {
                        made.put(d.getTarget(), host.openCopy(d.getTarget(), file(dir, d.getTarget(), lineage), d.getSizeBytes()));
                    }
                    log.atInfo().addKeyValue("vm", vm).addKeyValue("lineage", lineage).addKeyValue("disks", disks.size())
                            .log("disk copies resumed: the primary sends the writes it kept since our last checkpoint");
                    return new SvmDisks(hv, host, dir, lineage, true, made);
                } catch (IOException e) {
                    made.values().forEach(ReplicaDisk::close);
                    made.clear();
                    log.atWarn().addKeyValue("vm", vm).addKeyValue("lineage", lineage).addKeyValue("reason", e.getMessage())
                            .log("kept disk copies cannot be resumed; copying the disks again");
                }
            }
            for (Path p : host.list(dir)) {
                if (p.getFileName().toString().endsWith(".raw") || p.getFileName().toString().equals("lineage")) {
                    host.delete(p);
                }
            }
            String problem = roomProblem(host, dir, disks);
            if (problem != null) {
                throw new Refused(problem);
            }
            host.writeText(dir.resolve("lineage"), "lineage=" + lineage + " copying");
            for (ReplicatedDisk d : disks) {
                made.put(d.getTarget(), host.createCopy(d.getTarget(), file(dir, d.getTarget(), lineage), d.getSizeBytes(), hv.guestUser()));
            }
            return new SvmDisks(hv, host, dir, lineage, false, made);
        } catch (IOException e) {
            made.values().forEach(ReplicaDisk::close);
            throw new Refused("the secondary cannot make its copy of the VM's disks in " + dir + ": " + e.getMessage());
        }
    }

    /**
     * Whether this host can hold copies of {@code disks} for {@code vm} (the pre-check of a pairing:
     * nothing is made); null when it can, else the refusal.
     */
    static String check(DiskHost host, Path disksDir, String vm, List<ReplicatedDisk> disks) {
        Path dir = disksDir.resolve(vm);
        try {
            host.createDirectory(dir);
            String marker = host.readText(dir.resolve("lineage"));
            if (marker != null && marker.startsWith("took-over")) {
                return "this host's copy of the VM's disks in " + dir + " became the disk of an SVM that took over (" + marker
                        + "); move it away before pairing again";
            }
            return roomProblem(host, dir, disks);
        } catch (IOException e) {
            return "the secondary cannot use " + dir + " for the VM's disks: " + e.getMessage() + "; check [disks] dir on the secondary";
        }
    }

    /**
     * The copies need their whole virtual size free: they start sparse, but a guest may fill its
     * disk, and a copy that cannot take a write loses protection. Null when it fits.
     */
    private static String roomProblem(DiskHost host, Path dir, List<ReplicatedDisk> disks) throws IOException {
        long need = 0;
        for (ReplicatedDisk d : disks) {
            need += d.getSizeBytes();
        }
        long free = host.usableSpace(dir);
        if (free < need) {
            return "the secondary cannot hold the VM's disks: " + dir + " has " + gib(free) + " free, the disks need " + gib(need)
                    + " (" + disks.size() + " disk(s)); free space there or set [disks] dir on the secondary";
        }
        return null;
    }

    private static Path file(Path dir, String target, String lineage) {
        return dir.resolve(target + "-" + lineage.substring(0, Math.min(8, lineage.length())) + ".raw");
    }

    private static String gib(long bytes) {
        return String.format("%.1f GiB", bytes / (double) (1L << 30));
    }

    Map<String, ReplicaDisk> copies() {
        return copies;
    }

    /** The copies were kept from an earlier pairing in this lineage (nothing was copied now). */
    boolean resumed() {
        return resumed;
    }

    /** {@code xml} with each replicated disk as standby {@code name}'s: its own empty overlays over the copy. */
    DomainXml standby(DomainXml xml, String name) {
        List<Path> made = new ArrayList<>();
        // Recorded before the first file exists: a failure below leaves them to retired(name).
        overlays.put(name, made);
        DomainXml out = xml;
        for (ReplicaDisk copy : copies.values()) {
            Path active = dir.resolve(name + "-" + copy.name() + "-active.qcow2");
            Path hidden = dir.resolve(name + "-" + copy.name() + "-hidden.qcow2");
            made.add(hidden);
            hv.createOverlay(hidden, copy.size());
            made.add(active);
            hv.createOverlay(active, copy.size());
            out = out.withReplicatedDisk(copy.name(), copy.path(), active, hidden);
        }
        return out;
    }

    /** A checkpoint committed on the copies: they hold a whole disk of the lineage from now on. Blocking, once. */
    void committed() {
        if (complete || keptStandby != null) {
            return;
        }
        try {
            host.writeText(dir.resolve("lineage"), "lineage=" + lineage + " complete");
            complete = true;
        } catch (IOException e) {
            log.atWarn().addKeyValue("dir", dir).addKeyValue("reason", e.getMessage())
                    .log("cannot record that the disk copies are complete; a later pairing copies them again");
        }
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

    /**
     * SVM {@code name} took over: its overlays and the copies are its disks now. They stay, are no
     * copy of the lineage any more, and no later pairing may touch them.
     */
    void keep(String name) {
        keptStandby = name;
        try {
            host.writeText(dir.resolve("lineage"), "took-over svm=" + name + " lineage=" + lineage);
        } catch (IOException e) {
            log.atError().addKeyValue("dir", dir).addKeyValue("reason", e.getMessage())
                    .log("cannot mark the disk copies as the survivor's disks; do not pair this VM again before moving them away");
        }
    }

    /**
     * The pairing is over. The standbys' overlays go; the copies stay for a pairing that resumes
     * them unless {@code discardCopies} (or they never became complete).
     */
    void close(boolean discardCopies) {
        for (ReplicaDisk c : copies.values()) {
            c.close();
        }
        if (keptStandby != null) {
            return;
        }
        overlays.values().forEach(files -> files.forEach(host::delete));
        overlays.clear();
        if (discardCopies || !complete) {
            for (ReplicaDisk c : copies.values()) {
                host.delete(c.path());
            }
            host.delete(dir.resolve("lineage"));
        }
    }

    /** Ends the pairing keeping complete copies for a resume. */
    @Override
    public void close() {
        close(false);
    }
}
