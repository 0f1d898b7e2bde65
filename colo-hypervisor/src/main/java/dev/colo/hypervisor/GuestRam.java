package dev.colo.hypervisor;

import java.nio.ByteBuffer;

/**
 * A domain's guest RAM, mapped into this process. Offsets are guest-RAM offsets. Writes are seen
 * by the guest at once, so callers write only while the guest is paused or not yet loaded.
 */
public interface GuestRam extends AutoCloseable {
    int PAGE_SIZE = 4096;

    long size();

    default long pageCount() {
        return size() / PAGE_SIZE;
    }

    /** Copies {@code dst.remaining()} bytes starting at {@code offset} into {@code dst}. */
    void read(long offset, ByteBuffer dst);

    /** Copies {@code src.remaining()} bytes into guest RAM at {@code offset}. */
    void write(long offset, ByteBuffer src);

    /**
     * A read-only view of {@code length} bytes at {@code offset} that does not cross a mapping
     * chunk boundary, for zero-copy scans. {@link #chunkSize()} tells the boundary.
     */
    ByteBuffer view(long offset, int length);

    /** Views never cross a multiple of this size; a power of two and a multiple of the page. */
    int chunkSize();

    /**
     * Faults every page of this mapping in now, so that later access inside a checkpoint's pause
     * window costs no page faults (page tables belong to a mapping). Optional.
     */
    default void prefault() {
    }

    /** Human-readable location, e.g. the RAM file path. */
    String describe();

    @Override
    void close();
}
