package dev.colo.checkpoint.disk;

import com.google.protobuf.ByteString;
import dev.colo.checkpoint.link.proto.DiskExtent;
import dev.colo.checkpoint.link.proto.DiskWrites;
import dev.colo.checkpoint.ship.Codec;
import dev.colo.checkpoint.ship.CorruptBatchException;
import java.io.ByteArrayOutputStream;
import java.util.ArrayList;
import java.util.List;
import java.util.zip.CRC32C;

/**
 * Disk writes on the link: encoded into {@link DiskWrites} batches of at most about
 * {@code maxBatchBytes} of data (a larger single write gets a batch of its own), each with the
 * CRC32C of its data, and decoded back with every check done before anything is written.
 */
public final class DiskBatches {
    /** About 4 MiB of data per batch: well under the link's 16 MiB frame, large enough to stream. */
    public static final int DEFAULT_BATCH_BYTES = 4 << 20;

    private DiskBatches() {
    }

    /** Epochs of one disk, in order, as batches numbered from {@code firstSequence}. */
    public static List<DiskWrites> encode(long checkpointSeq, String disk, List<DiskWriteLog.Epoch> epochs, Codec codec,
            int maxBatchBytes, int firstSequence, boolean seed) {
        List<DiskWrites> out = new ArrayList<>();
        for (DiskWriteLog.Epoch epoch : epochs) {
            List<DiskWriteLog.Extent> batch = new ArrayList<>();
            long bytes = 0;
            for (DiskWriteLog.Extent e : epoch.writes()) {
                if (!batch.isEmpty() && bytes + e.held() > maxBatchBytes) {
                    out.add(batch(checkpointSeq, firstSequence + out.size(), disk, epoch.seq(), batch, codec, seed));
                    batch = new ArrayList<>();
                    bytes = 0;
                }
                batch.add(e);
                bytes += e.held();
            }
            if (!batch.isEmpty()) {
                out.add(batch(checkpointSeq, firstSequence + out.size(), disk, epoch.seq(), batch, codec, seed));
            }
        }
        return out;
    }

    /** One batch of writes, numbered {@code sequence}. */
    public static DiskWrites batch(long checkpointSeq, int sequence, String disk, long epoch, List<DiskWriteLog.Extent> writes, Codec codec,
            boolean seed) {
        ByteArrayOutputStream raw = new ByteArrayOutputStream();
        DiskWrites.Builder b = DiskWrites.newBuilder().setCheckpointSeq(checkpointSeq).setSequence(sequence).setDisk(disk).setEpoch(epoch)
                .setSeed(seed);
        for (DiskWriteLog.Extent e : writes) {
            b.addExtents(DiskExtent.newBuilder().setOffset(e.offset()).setLength(e.length()).setZero(e.zero()));
            if (!e.zero()) {
                raw.writeBytes(e.data());
            }
        }
        byte[] data = raw.toByteArray();
        CRC32C crc = new CRC32C();
        crc.update(data);
        byte[] packed = codec.compress(data, data.length);
        return b.setCodec(codec.wireName()).setRawLength(data.length).setData(ByteString.copyFrom(packed)).setCrc32C((int) crc.getValue())
                .build();
    }

    /** Checks a batch against the disk's size and its CRC32C and returns its writes; nothing is written. */
    public static List<DiskWriteLog.Extent> decode(DiskWrites b, long diskSize) {
        byte[] data;
        try {
            data = Codec.fromWire(b.getCodec()).decompress(b.getData().toByteArray(), b.getRawLength());
        } catch (RuntimeException e) {
            throw new CorruptBatchException("disk " + b.getDisk() + " batch " + b.getSequence() + " does not decompress: " + e.getMessage());
        }
        CRC32C crc = new CRC32C();
        crc.update(data);
        if ((int) crc.getValue() != b.getCrc32C()) {
            throw new CorruptBatchException("disk " + b.getDisk() + " batch " + b.getSequence() + " fails its CRC32C");
        }
        List<DiskWriteLog.Extent> out = new ArrayList<>(b.getExtentsCount());
        int at = 0;
        for (DiskExtent e : b.getExtentsList()) {
            if (e.getOffset() < 0 || e.getLength() < 0 || e.getOffset() > diskSize || e.getLength() > diskSize - e.getOffset()) {
                throw new CorruptBatchException("disk " + b.getDisk() + " batch " + b.getSequence() + " writes " + e.getLength()
                        + " bytes at " + e.getOffset() + ", outside its " + diskSize + " bytes");
            }
            if (e.getZero()) {
                out.add(DiskWriteLog.Extent.zeroes(e.getOffset(), e.getLength()));
                continue;
            }
            if (e.getLength() > data.length - at) {
                throw new CorruptBatchException("disk " + b.getDisk() + " batch " + b.getSequence() + " lists more data than it carries");
            }
            byte[] d = java.util.Arrays.copyOfRange(data, at, at + (int) e.getLength());
            at += (int) e.getLength();
            out.add(DiskWriteLog.Extent.of(e.getOffset(), d));
        }
        if (at != data.length) {
            throw new CorruptBatchException("disk " + b.getDisk() + " batch " + b.getSequence() + " carries " + (data.length - at)
                    + " bytes no extent names");
        }
        return out;
    }
}
