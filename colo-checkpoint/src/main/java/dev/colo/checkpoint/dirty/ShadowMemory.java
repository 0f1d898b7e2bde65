package dev.colo.checkpoint.dirty;

import dev.colo.hypervisor.GuestRam;
import java.nio.ByteBuffer;

/**
 * The daemon's copy of guest RAM as of the last checkpoint, off-heap in chunks of at most 1 GiB.
 * It is what the secondary's SVM holds, so the pages that differ from it are the ones to ship.
 */
public final class ShadowMemory {
    private final long size;
    private final int chunk;
    private final ByteBuffer[] chunks;

    public ShadowMemory(long size, int chunk) {
        if (size % GuestRam.PAGE_SIZE != 0 || chunk % GuestRam.PAGE_SIZE != 0) {
            throw new IllegalArgumentException("sizes must be page multiples: size=" + size + " chunk=" + chunk);
        }
        this.size = size;
        this.chunk = chunk;
        int n = (int) ((size + chunk - 1) / chunk);
        this.chunks = new ByteBuffer[n];
        for (int i = 0; i < n; i++) {
            chunks[i] = ByteBuffer.allocateDirect((int) Math.min(chunk, size - (long) i * chunk));
        }
    }

    /** A shadow laid out like {@code ram}, so views line up chunk for chunk. */
    public static ShadowMemory like(GuestRam ram) {
        return new ShadowMemory(ram.size(), Math.min(ram.chunkSize(), 1 << 30));
    }

    public long size() {
        return size;
    }

    public int chunkSize() {
        return chunk;
    }

    /** A writable view that does not cross a chunk. */
    public ByteBuffer view(long offset, int length) {
        int idx = (int) (offset / chunk);
        int within = (int) (offset % chunk);
        return chunks[idx].slice(within, length);
    }

    /** Copies all of {@code ram} (the pre-copy's first round, or a full checkpoint). */
    public void copyAll(GuestRam ram) {
        for (long off = 0; off < size; off += chunk) {
            int len = (int) Math.min(chunk, size - off);
            view(off, len).put(ram.view(off, len));
        }
    }
}
