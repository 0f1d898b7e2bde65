package dev.colo.checkpoint.ship;

import com.google.protobuf.ByteString;
import dev.colo.checkpoint.dirty.ShadowMemory;
import dev.colo.checkpoint.link.proto.PageBatch;
import dev.colo.hypervisor.GuestRam;
import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.List;
import java.util.zip.CRC32C;

/**
 * Encodes a checkpoint's dirty pages into batches and verifies them on the way in. A batch is
 * checked whole (codec, size, page list, CRC32C) before any page is written; the caller applies a
 * checkpoint only when every batch it announced verified.
 */
public final class PageBatches {
    private static final ByteBuffer ZERO_PAGE = ByteBuffer.allocateDirect(GuestRam.PAGE_SIZE);

    private PageBatches() {}

    /** Totals of one encoded checkpoint. */
    public record Encoded(List<PageBatch> batches, long pages, long zeroPages, long rawBytes, long wireBytes) {}

    /** Encodes {@code pages} (in order) from the shadow, at most {@code pagesPerBatch} data pages per batch. */
    public static Encoded encode(long seq, long[] pages, ShadowMemory shadow, Codec codec, int pagesPerBatch) {
        List<PageBatch> out = new ArrayList<>();
        byte[] raw = new byte[pagesPerBatch * GuestRam.PAGE_SIZE];
        PageBatch.Builder b = PageBatch.newBuilder().setCheckpointSeq(seq).setSequence(0);
        int filled = 0;
        long zeros = 0;
        long rawBytes = 0;
        long wire = 0;
        CRC32C crc = new CRC32C();
        for (long page : pages) {
            ByteBuffer p = shadow.view(page * GuestRam.PAGE_SIZE, GuestRam.PAGE_SIZE);
            if (p.mismatch(ZERO_PAGE.duplicate()) < 0) {
                b.addZeroPages(page);
                zeros++;
                continue;
            }
            p.get(raw, filled * GuestRam.PAGE_SIZE, GuestRam.PAGE_SIZE);
            crc.update(raw, filled * GuestRam.PAGE_SIZE, GuestRam.PAGE_SIZE);
            b.addPages(page);
            filled++;
            if (filled == pagesPerBatch) {
                PageBatch done = finish(b, codec, raw, filled, crc);
                wire += done.getData().size();
                rawBytes += (long) filled * GuestRam.PAGE_SIZE;
                out.add(done);
                b = PageBatch.newBuilder().setCheckpointSeq(seq).setSequence(out.size());
                crc = new CRC32C();
                filled = 0;
            }
        }
        if (filled > 0 || b.getZeroPagesCount() > 0 || out.isEmpty()) {
            PageBatch done = finish(b, codec, raw, filled, crc);
            wire += done.getData().size();
            rawBytes += (long) filled * GuestRam.PAGE_SIZE;
            out.add(done);
        }
        return new Encoded(out, pages.length, zeros, rawBytes, wire);
    }

    private static PageBatch finish(PageBatch.Builder b, Codec codec, byte[] raw, int filled, CRC32C crc) {
        int len = filled * GuestRam.PAGE_SIZE;
        return b.setCodec(codec.wireName()).setRawLength(len).setCrc32C((int) crc.getValue())
                .setData(ByteString.copyFrom(codec.compress(raw, len))).build();
    }

    /** A batch that verified: its pages and their bytes, ready to write. */
    public record Verified(long[] pages, long[] zeroPages, byte[] data) {}

    /**
     * Verifies one batch for {@code seq} against a guest of {@code pageCount} pages, or throws
     * {@link CorruptBatchException} naming what is wrong.
     */
    public static Verified verify(PageBatch batch, long seq, long pageCount) {
        if (batch.getCheckpointSeq() != seq) {
            throw new CorruptBatchException("batch " + batch.getSequence() + " is for checkpoint " + batch.getCheckpointSeq() + ", expected " + seq);
        }
        int expected = batch.getPagesCount() * GuestRam.PAGE_SIZE;
        if (batch.getRawLength() != expected) {
            throw new CorruptBatchException("batch " + batch.getSequence() + " says " + batch.getRawLength() + " raw bytes for "
                    + batch.getPagesCount() + " pages");
        }
        for (long p : batch.getPagesList()) {
            checkPage(batch, p, pageCount);
        }
        for (long p : batch.getZeroPagesList()) {
            checkPage(batch, p, pageCount);
        }
        byte[] data = Codec.fromWire(batch.getCodec()).decompress(batch.getData().toByteArray(), expected);
        CRC32C crc = new CRC32C();
        crc.update(data, 0, data.length);
        if ((int) crc.getValue() != batch.getCrc32C()) {
            throw new CorruptBatchException(String.format("batch %d fails its CRC32C (got %08x, expected %08x)", batch.getSequence(),
                    (int) crc.getValue(), batch.getCrc32C()));
        }
        return new Verified(batch.getPagesList().stream().mapToLong(Long::longValue).toArray(),
                batch.getZeroPagesList().stream().mapToLong(Long::longValue).toArray(), data);
    }

    private static void checkPage(PageBatch batch, long page, long pageCount) {
        if (page < 0 || page >= pageCount) {
            throw new CorruptBatchException("batch " + batch.getSequence() + " names page " + page + " outside a guest of " + pageCount + " pages");
        }
    }

    /** Writes a verified batch into guest RAM (the standby's, before it loads device state). */
    public static void apply(Verified v, GuestRam target) {
        ByteBuffer data = ByteBuffer.wrap(v.data());
        for (int i = 0; i < v.pages().length; i++) {
            data.limit((i + 1) * GuestRam.PAGE_SIZE).position(i * GuestRam.PAGE_SIZE);
            target.write(v.pages()[i] * GuestRam.PAGE_SIZE, data);
        }
        for (long z : v.zeroPages()) {
            target.write(z * GuestRam.PAGE_SIZE, ZERO_PAGE.duplicate());
        }
    }
}
