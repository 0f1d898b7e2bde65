package dev.colo.checkpoint.ship;

import dev.colo.checkpoint.disk.DiskBatches;
import dev.colo.checkpoint.disk.DiskWriteLog;
import dev.colo.checkpoint.link.proto.CheckpointBegin;
import dev.colo.checkpoint.link.proto.CheckpointCommit;
import dev.colo.checkpoint.link.proto.DeviceState;
import dev.colo.checkpoint.link.proto.DeviceStateForm;
import dev.colo.checkpoint.link.proto.DiskWrites;
import dev.colo.checkpoint.link.proto.PageBatch;
import dev.colo.hypervisor.GuestRam;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.zip.CRC32C;

/**
 * The secondary's side of one checkpoint: collects begin, page batches, device state and commit,
 * and only when all of them are present and verify does it write pages into the standby's RAM.
 * Anything wrong or missing throws {@link CorruptBatchException} and nothing is written: the
 * previous SVM keeps running and the primary resyncs. Pure apart from the final write.
 */
public final class CheckpointAssembler {
    private final CheckpointBegin begin;
    private final long pageCount;
    private final TreeMap<Integer, PageBatch> batches = new TreeMap<>();
    private final TreeMap<Integer, DiskWrites> diskBatches = new TreeMap<>();
    private List<DiskWrite> diskWrites = List.of();
    private byte[] deviceState;
    private DeviceStateForm form = DeviceStateForm.MIGRATION_STREAM;
    private List<PageBatches.Verified> applied = List.of();

    public CheckpointAssembler(CheckpointBegin begin, long guestRamBytes) {
        if (begin.getCheckpointSeq() < 1) {
            throw new CorruptBatchException("checkpoint number " + Long.toUnsignedString(begin.getCheckpointSeq()) + " is out of range");
        }
        if (begin.getGuestRamBytes() != guestRamBytes) {
            throw new CorruptBatchException("checkpoint " + begin.getCheckpointSeq() + " is for " + begin.getGuestRamBytes()
                    + " bytes of guest RAM, our standby has " + guestRamBytes);
        }
        if (begin.getPageSize() != GuestRam.PAGE_SIZE) {
            throw new CorruptBatchException("page size " + begin.getPageSize() + " is not " + GuestRam.PAGE_SIZE);
        }
        this.begin = begin;
        this.pageCount = guestRamBytes / GuestRam.PAGE_SIZE;
    }

    public long seq() {
        return begin.getCheckpointSeq();
    }

    /** Every page of guest RAM is in this checkpoint (zero pages listed), not only the dirty ones. */
    public boolean full() {
        return begin.getFull();
    }

    public void onBatch(PageBatch b) {
        if (b.getCheckpointSeq() != seq()) {
            throw new CorruptBatchException("batch for checkpoint " + b.getCheckpointSeq() + " during checkpoint " + seq());
        }
        if (b.getSequence() >= begin.getBatches()) {
            throw new CorruptBatchException("batch " + b.getSequence() + " beyond the " + begin.getBatches() + " announced");
        }
        if (batches.putIfAbsent(b.getSequence(), b) != null) {
            throw new CorruptBatchException("batch " + b.getSequence() + " arrived twice");
        }
    }

    /** One write to disk {@code disk}, in the order the batches list them. */
    public record DiskWrite(String disk, DiskWriteLog.Extent extent) {}

    public void onDiskWrites(DiskWrites b) {
        if (b.getCheckpointSeq() != seq()) {
            throw new CorruptBatchException("disk batch for checkpoint " + b.getCheckpointSeq() + " during checkpoint " + seq());
        }
        if (b.getSequence() >= begin.getDiskBatches()) {
            throw new CorruptBatchException("disk batch " + b.getSequence() + " beyond the " + begin.getDiskBatches() + " announced");
        }
        if (diskBatches.putIfAbsent(b.getSequence(), b) != null) {
            throw new CorruptBatchException("disk batch " + b.getSequence() + " arrived twice");
        }
    }

    /** Per disk whose copy made while pairing ended at this checkpoint: how many copy batches the primary sent. */
    public Map<String, Long> diskCopyBatches() {
        return begin.getDiskCopyBatchesMap();
    }

    /** The first checkpoint after the RAM pre-copy: how many pre-copy batches the primary made (0 otherwise). */
    public long precopyBatches() {
        return begin.getPrecopyBatches();
    }

    /** The disk writes of a verified checkpoint, oldest first (empty before {@link #verify}). */
    public List<DiskWrite> diskWrites() {
        return diskWrites;
    }

    public void onDeviceState(DeviceState d) {
        if (d.getCheckpointSeq() != seq()) {
            throw new CorruptBatchException("device state for checkpoint " + d.getCheckpointSeq() + " during checkpoint " + seq());
        }
        byte[] raw = d.getCodec().isEmpty() ? d.getState().toByteArray()
                : Codec.fromWire(d.getCodec()).decompress(d.getState().toByteArray(), d.getRawLength());
        CRC32C crc = new CRC32C();
        crc.update(raw);
        if ((int) crc.getValue() != d.getCrc32C()) {
            throw new CorruptBatchException("device state fails its CRC32C");
        }
        deviceState = raw;
        form = d.getForm();
    }

    /** How the device state came: a whole migration stream, or devices only (loads only in place). */
    public DeviceStateForm form() {
        return form;
    }

    /** Verifies everything, then writes the pages into {@code standbyRam}; returns the device state. */
    public byte[] commit(CheckpointCommit c, GuestRam standbyRam) {
        byte[] device = verify(c);
        applyAgain(standbyRam);
        return device;
    }

    /** Verifies everything and writes nothing (see {@link #applyAgain}); returns the device state. */
    public byte[] verify(CheckpointCommit c) {
        return verify(c, Map.of());
    }

    /**
     * Verifies everything, including the disk batches against {@code diskSizes} (the replicated
     * disks by name), and writes nothing; returns the device state.
     */
    public byte[] verify(CheckpointCommit c, Map<String, Long> diskSizes) {
        if (c.getCheckpointSeq() != seq()) {
            throw new CorruptBatchException("commit for checkpoint " + c.getCheckpointSeq() + " during checkpoint " + seq());
        }
        if (batches.size() != begin.getBatches() || c.getBatches() != begin.getBatches()) {
            List<Integer> missing = new ArrayList<>();
            for (int i = 0; i < begin.getBatches(); i++) {
                if (!batches.containsKey(i)) {
                    missing.add(i);
                }
            }
            throw new CorruptBatchException("checkpoint " + seq() + " incomplete: missing batches " + missing);
        }
        if (deviceState == null) {
            throw new CorruptBatchException("checkpoint " + seq() + " has no device state");
        }
        if (diskBatches.size() != begin.getDiskBatches()) {
            throw new CorruptBatchException("checkpoint " + seq() + " incomplete: " + diskBatches.size() + " of " + begin.getDiskBatches()
                    + " disk batches");
        }
        List<DiskWrite> writes = new ArrayList<>();
        for (DiskWrites b : diskBatches.values()) {
            Long size = diskSizes.get(b.getDisk());
            if (size == null) {
                throw new CorruptBatchException("checkpoint " + seq() + " writes disk '" + b.getDisk() + "', which this pairing does not replicate");
            }
            for (DiskWriteLog.Extent e : DiskBatches.decode(b, size)) {
                writes.add(new DiskWrite(b.getDisk(), e));
            }
        }
        List<PageBatches.Verified> verified = new ArrayList<>();
        for (PageBatch b : batches.values()) {
            verified.add(PageBatches.verify(b, seq(), pageCount));
        }
        applied = verified;
        diskWrites = writes;
        return deviceState;
    }

    /** Writes the verified pages into a copy of guest RAM (a standby's, the secondary's shadow). */
    public void applyAgain(GuestRam other) {
        for (PageBatches.Verified v : applied) {
            PageBatches.apply(v, other);
        }
    }
}
