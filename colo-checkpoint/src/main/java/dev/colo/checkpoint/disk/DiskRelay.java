package dev.colo.checkpoint.disk;

import dev.colo.checkpoint.link.proto.DiskWrites;
import dev.colo.checkpoint.ship.Codec;
import io.netty.buffer.ByteBuf;
import java.util.List;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The primary's end of one mirrored disk: what QEMU's mirror job writes into colo's NBD export.
 * A guest write completes on the PVM only once the relay holds it, so every write the guest saw
 * complete before a checkpoint's pause is in that checkpoint's epoch.
 *
 * <ul>
 *   <li>{@link Mode#COPYING}: while pairing (no SVM yet), the copy of the whole disk and the guest's
 *       writes are sent to the secondary at once, which writes them to its copy as they come. The
 *       connection stops reading while the link is behind, so the guest's writes wait instead of
 *       colo buffering without bound.
 *   <li>{@link Mode#LOGGING}: from the first checkpoint's pause on, writes are kept in the
 *       {@link DiskWriteLog}, cut into epochs at each pause, shipped with the checkpoints and dropped
 *       once acknowledged. Past {@code triggerBytes} it asks for a checkpoint; past
 *       {@code limitBytes} the guest's writes wait for one, except while a checkpoint pauses the PVM
 *       (its {@code stop} waits for the writes in flight, so they must be taken: {@link #pausing}).
 *   <li>{@link Mode#KEEPING}: protection was lost (the secondary or the link went away): writes are
 *       still kept, never waited for, so that a later pairing can bring the secondary's copy up to
 *       date from them instead of copying the whole disk; past {@code limitBytes} they are dropped
 *       and the relay detaches.
 *   <li>{@link Mode#DETACHED}: the pairing is over; writes are acknowledged and forgotten until the
 *       mirror is stopped (the next pairing copies the disk again).
 * </ul>
 * Thread-safe: writes come from the connection's event loop, cuts and acknowledgements from the
 * checkpoint engine.
 */
public final class DiskRelay implements DiskWriteTarget {
    private static final Logger log = LoggerFactory.getLogger(DiskRelay.class);

    public enum Mode { COPYING, LOGGING, KEEPING, DETACHED }

    /** Where the copy goes while pairing, and who is told about the relay's state. */
    public interface Link {
        /**
         * Queues a batch of the copy for the secondary; false only when it could not be queued (no
         * link), never merely because the link is behind: {@link #writable()} says that.
         */
        boolean send(DiskWrites batch);

        boolean writable();

        /** The log passed {@code triggerBytes}: a checkpoint would empty it. */
        void checkpointWanted(String disk, long heldBytes);

        /** The mirror's connection ended: this disk's copy on the secondary stops following. */
        void broken(String disk, String why);
    }

    private final String disk;
    private final long size;
    private final Codec codec;
    private final Link link;
    private final long triggerBytes;
    private final long limitBytes;
    private final DiskWriteLog writes = new DiskWriteLog();
    private Mode mode = Mode.COPYING;
    private boolean connected = true;
    private String brokenBecause;
    private long copiedBytes;
    private long copyBatches;
    private long copyEndedAt = -1;
    /** The secondary acknowledged a checkpoint at or after the copy's end: it had every batch of it. */
    private boolean copyConfirmed;
    private boolean triggered;
    /** A checkpoint's pause is under way (until its cut): writes are taken even past the limit. */
    private boolean pauseComing;
    /** The copy lost a batch to a down link: said once, the first checkpoint refuses the copy. */
    private boolean copyBatchLost;

    public DiskRelay(String disk, long size, Codec codec, Link link, long triggerBytes, long limitBytes) {
        this.disk = disk;
        this.size = size;
        this.codec = codec;
        this.link = link;
        this.triggerBytes = triggerBytes;
        this.limitBytes = limitBytes;
    }

    public String disk() {
        return disk;
    }

    public long size() {
        return size;
    }

    // --- the NBD side (the connection's event loop) ---

    @Override
    public int write(long offset, ByteBuf data) {
        byte[] b = new byte[data.readableBytes()];
        data.getBytes(data.readerIndex(), b);
        return take(DiskWriteLog.Extent.of(offset, b));
    }

    @Override
    public int writeZeroes(long offset, long length) {
        return take(DiskWriteLog.Extent.zeroes(offset, length));
    }

    /** A write from a hypervisor that models the disk in memory (the simulation); same rules as over NBD. */
    public synchronized int take(DiskWriteLog.Extent e) {
        switch (mode) {
            case COPYING -> {
                copiedBytes += e.held();
                if (!link.send(DiskBatches.batch(0, (int) copyBatches++, disk, 0, List.of(e), codec, true)) && !copyBatchLost) {
                    // The secondary counts the copy's batches: at the first checkpoint it finds this
                    // one missing and refuses the copy (NOT_PAIRED), so this pairing fails.
                    copyBatchLost = true;
                    log.atWarn().addKeyValue("disk", disk).addKeyValue("batch", copyBatches - 1)
                            .log("disk copy batch lost: the replication link is down; the secondary will refuse this copy at the first checkpoint");
                }
            }
            case LOGGING -> {
                writes.append(e);
                if (!triggered && writes.heldBytes() > triggerBytes) {
                    triggered = true;
                    link.checkpointWanted(disk, writes.heldBytes());
                }
            }
            case KEEPING -> {
                writes.append(e);
                if (writes.heldBytes() > limitBytes) {
                    log.atWarn().addKeyValue("disk", disk).addKeyValue("held_bytes", writes.heldBytes()).addKeyValue("limit_bytes", limitBytes)
                            .log("unprotected writes passed the limit; they are dropped and the next pairing copies the disk again");
                    mode = Mode.DETACHED;
                    writes.clear();
                }
            }
            case DETACHED -> {
                // The pairing is over: nothing follows this disk any more.
            }
        }
        return 0;
    }

    @Override
    public int flush() {
        return 0;
    }

    @Override
    public synchronized boolean writable() {
        return switch (mode) {
            case COPYING -> link.writable();
            case LOGGING -> pauseComing || writes.heldBytes() < limitBytes;
            case KEEPING, DETACHED -> true;
        };
    }

    @Override
    public void disconnected(String why) {
        synchronized (this) {
            connected = false;
            brokenBecause = why;
        }
        log.atWarn().addKeyValue("disk", disk).addKeyValue("reason", why).log("disk mirror connection ended");
        link.broken(disk, why);
    }

    // --- the checkpoint engine's side ---

    /**
     * A checkpoint is about to pause the PVM. QMP {@code stop} drains the guest's writes in flight,
     * which wait for this relay; a relay at its limit would never take them and the pause would
     * never end (the log only empties once that very checkpoint is acknowledged). So until the cut,
     * writes are taken past the limit: at most what QEMU has in flight. Stays set if the pause
     * fails, until the next checkpoint's cut, because a stop that timed out may still be draining.
     */
    public synchronized void pausing() {
        pauseComing = true;
    }

    /**
     * Checkpoint {@code seq} paused the PVM (QMP {@code stop} drained its I/O, so every write the
     * guest completed is here): what came since the last cut is epoch {@code seq}. The first cut
     * ends the copy: from now on writes are logged.
     */
    public synchronized void cut(long seq) {
        pauseComing = false;
        if (!connected) {
            throw new IllegalStateException("disk " + disk + " is not mirrored any more (" + brokenBecause + ")");
        }
        if (mode == Mode.COPYING) {
            mode = Mode.LOGGING;
            copyEndedAt = seq;
            writes.cut(seq); // empty: everything before it went out as the copy, ahead of this checkpoint
            return;
        }
        if (mode != Mode.LOGGING) {
            throw new IllegalStateException("disk " + disk + " is not logging for a pairing (" + mode + ")");
        }
        writes.cut(seq);
        triggered = false;
    }

    /**
     * The epochs checkpoint {@code seq} ships, as batches numbered from {@code firstSequence}.
     * Encoded outside the lock (closed epochs never change): compressing up to the log's limit
     * must not hold up the guest's writes on the connection's event loop.
     */
    public List<DiskWrites> batches(long seq, int firstSequence, int maxBatchBytes) {
        List<DiskWriteLog.Epoch> epochs;
        synchronized (this) {
            epochs = writes.unacknowledged(seq);
        }
        return DiskBatches.encode(seq, disk, epochs, codec, maxBatchBytes, firstSequence, false);
    }

    /** The secondary runs checkpoint {@code seq}: its epochs are on the secondary's copy. */
    public synchronized void acknowledged(long seq) {
        writes.acknowledged(seq);
        if (copyEndedAt >= 0 && seq >= copyEndedAt) {
            copyConfirmed = true;
        }
    }

    /**
     * How many copy batches checkpoint {@code seq} must tell the secondary about: until one
     * checkpoint at or after the copy's end is acknowledged, every checkpoint carries the count.
     */
    public synchronized java.util.OptionalLong copyBatchesToConfirm(long seq) {
        return copyEndedAt >= 0 && seq >= copyEndedAt && !copyConfirmed ? java.util.OptionalLong.of(copyBatches) : java.util.OptionalLong.empty();
    }

    /**
     * Protection is lost but a later pairing may resume the secondary's copy: go on keeping writes,
     * without ever making the guest wait. A relay still copying cannot resume and detaches.
     */
    public synchronized void keep() {
        if (mode == Mode.LOGGING) {
            mode = Mode.KEEPING;
        } else if (mode == Mode.COPYING) {
            detach();
        }
    }

    /** A new pairing resumed the secondary's copy: the writes kept since go with its checkpoints. */
    public synchronized void resume() {
        if (mode != Mode.KEEPING) {
            throw new IllegalStateException("disk " + disk + " cannot resume from " + mode);
        }
        mode = Mode.LOGGING;
        triggered = false;
        // The secondary resumes only a copy it marked complete: its copy batches were counted then.
        copyConfirmed = true;
    }

    /** Still keeps every write since the secondary's last acknowledged checkpoint, on a live mirror. */
    public synchronized boolean resumable() {
        return mode == Mode.KEEPING && connected;
    }

    /** The pairing is over: stop keeping writes. */
    public synchronized void detach() {
        mode = Mode.DETACHED;
        writes.clear();
    }

    public synchronized Mode mode() {
        return mode;
    }

    public synchronized boolean connected() {
        return connected;
    }

    /** Batches the copy made while pairing sent (numbered 0 .. this - 1). */
    public synchronized long copyBatches() {
        return copyBatches;
    }

    /** Bytes of data sent as the copy while pairing. */
    public synchronized long copiedBytes() {
        return copiedBytes;
    }

    public synchronized long heldBytes() {
        return writes.heldBytes();
    }
}
