package dev.colo.daemon.node;

import dev.colo.checkpoint.disk.DiskBatches;
import dev.colo.checkpoint.disk.DiskRelay;
import dev.colo.checkpoint.disk.DiskRelays;
import dev.colo.checkpoint.link.proto.ReplicatedDisk;
import dev.colo.checkpoint.ship.Codec;
import dev.colo.hypervisor.DiskMirror;
import dev.colo.hypervisor.DomainRef;
import dev.colo.hypervisor.Hypervisor;
import dev.colo.hypervisor.MirrorTarget;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;

/**
 * The primary's side of disk replication for one pairing: for each writable disk of the PVM, a
 * {@link DiskRelay}, the NBD export it is served at and QEMU's mirror writing into it. Made once
 * the secondary accepted the pair (the copy starts at once), handed to the checkpoint engine when
 * the copy is complete, closed when the pairing ends. Work lane for everything that blocks.
 */
final class PvmDisks implements AutoCloseable {
    private static final Duration QMP = Duration.ofSeconds(10);

    /** One disk: its relay, its export and QEMU's mirror into it. */
    record Disk(String target, long size, DiskRelay relay, AutoCloseable export, DiskMirror mirror) {}

    /** The copy made while pairing, over all disks. */
    record Copy(long doneBytes, long totalBytes, boolean ready, String error) {}

    private final String lineage;
    private final List<Disk> disks;
    private final DiskRelays epochs;
    private final java.util.concurrent.atomic.AtomicBoolean closed = new java.util.concurrent.atomic.AtomicBoolean();

    private PvmDisks(String lineage, List<Disk> disks) {
        this.lineage = lineage;
        this.disks = List.copyOf(disks);
        List<DiskRelay> relays = new ArrayList<>();
        for (Disk d : disks) {
            relays.add(d.relay());
        }
        this.epochs = new DiskRelays(relays, DiskBatches.DEFAULT_BATCH_BYTES);
    }

    /**
     * Starts the relay, the export and the mirror of every disk of {@code specs}; if one fails,
     * what was started is stopped again and the failure is thrown.
     */
    static PvmDisks start(Hypervisor hv, DiskHost host, DomainRef pvm, String lineage, List<ReplicatedDisk> specs, Path socketDir, Codec codec,
            DiskRelay.Link link, long triggerBytes, long limitBytes) throws Exception {
        List<Disk> started = new ArrayList<>();
        try {
            for (ReplicatedDisk spec : specs) {
                DiskRelay relay = new DiskRelay(spec.getTarget(), spec.getSizeBytes(), codec, link, triggerBytes, limitBytes);
                Path socket = socketDir.resolve(pvm.name() + "-" + spec.getTarget() + ".sock");
                AutoCloseable export = host.serveNbd(socket, relay, hv.guestUser());
                DiskMirror mirror;
                try {
                    mirror = hv.mirrorDisk(pvm, spec.getTarget(), new MirrorTarget() {
                        @Override
                        public Path nbdSocket() {
                            return socket;
                        }

                        @Override
                        public void write(long offset, long length, byte[] data) {
                            relay.take(data == null ? dev.colo.checkpoint.disk.DiskWriteLog.Extent.zeroes(offset, length)
                                    : dev.colo.checkpoint.disk.DiskWriteLog.Extent.of(offset, data));
                        }
                    }, QMP);
                } catch (RuntimeException e) {
                    export.close();
                    throw e;
                }
                started.add(new Disk(spec.getTarget(), spec.getSizeBytes(), relay, export, mirror));
            }
            return new PvmDisks(lineage, started);
        } catch (Exception e) {
            new PvmDisks(lineage, started).close();
            throw e;
        }
    }

    List<Disk> disks() {
        return disks;
    }

    /** The line of copies these mirrors feed: the secondary names its copies after it. */
    String lineage() {
        return lineage;
    }

    /** Protection is lost: keep every write (never waiting for one) for a pairing that resumes the secondary's copies. */
    void keepForResume() {
        for (Disk d : disks) {
            d.relay().keep();
        }
    }

    /** Every disk still holds every write since the secondary's last acknowledged checkpoint, and QEMU still mirrors it (blocking). */
    boolean resumable() {
        for (Disk d : disks) {
            if (!d.relay().resumable()) {
                return false;
            }
            DiskMirror.Progress p = d.mirror().progress(QMP);
            if (p.error() != null || !p.ready()) {
                return false;
            }
        }
        return true;
    }

    /** The secondary resumed its copies: the kept writes go with the next checkpoints. */
    void resume() {
        for (Disk d : disks) {
            d.relay().resume();
        }
    }

    DiskRelays epochs() {
        return epochs;
    }

    /** How far the copies are (blocking: asks QEMU). */
    Copy copy() {
        long done = 0;
        long total = 0;
        boolean ready = true;
        for (Disk d : disks) {
            DiskMirror.Progress p = d.mirror().progress(QMP);
            if (p.error() != null) {
                return new Copy(done, total, false, "disk " + d.target() + ": " + p.error());
            }
            if (!d.relay().connected()) {
                return new Copy(done, total, false, "disk " + d.target() + ": the mirror's connection ended");
            }
            done += p.doneBytes();
            total += p.totalBytes();
            ready &= p.ready();
        }
        return new Copy(done, total, ready, null);
    }

    /** The pairing is over: the relays forget, QEMU's mirrors stop, the exports close. Blocking. */
    @Override
    public void close() {
        if (closed.getAndSet(true)) {
            return; // the daemon's stop and a lane may both close a pairing's copy
        }
        for (Disk d : disks) {
            d.relay().detach();
        }
        for (Disk d : disks) {
            d.mirror().close();
            try {
                d.export().close();
            } catch (Exception ignored) {
                // the socket file is replaced at the next pairing
            }
        }
    }
}
