package dev.colo.checkpoint.dirty;

import dev.colo.hypervisor.GuestRam;
import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Future;

/**
 * Finds the pages of guest RAM that differ from the shadow and copies them into it, while the PVM
 * is paused. {@code ByteBuffer.mismatch} is vectorized by the JDK and skips equal runs in one call,
 * so a clean stripe costs one call; the stripes run in parallel.
 */
public final class DirtyPageScanner {
    /** Work unit: large enough to amortize a task, small enough to balance across cores. */
    static final int STRIPE = 8 << 20;

    private final ExecutorService pool;

    public DirtyPageScanner(ExecutorService pool) {
        this.pool = pool;
    }

    /** Scans and updates the shadow; returns the dirty page numbers in increasing order. */
    public long[] scanAndUpdate(GuestRam live, ShadowMemory shadow) {
        if (live.size() != shadow.size()) {
            throw new IllegalArgumentException("guest RAM is " + live.size() + " bytes but the shadow is " + shadow.size());
        }
        int stripe = Math.min(STRIPE, Math.min(live.chunkSize(), shadow.chunkSize()));
        List<Future<long[]>> parts = new ArrayList<>();
        for (long off = 0; off < live.size(); off += stripe) {
            long start = off;
            int len = (int) Math.min(stripe, live.size() - off);
            parts.add(pool.submit(() -> scanStripe(live.view(start, len), shadow.view(start, len), start)));
        }
        long[][] found = new long[parts.size()][];
        int total = 0;
        try {
            for (int i = 0; i < found.length; i++) {
                found[i] = parts.get(i).get();
                total += found[i].length;
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException("dirty-page scan interrupted", e);
        } catch (ExecutionException e) {
            throw new IllegalStateException("dirty-page scan failed: " + e.getCause(), e.getCause());
        }
        long[] all = new long[total];
        int p = 0;
        for (long[] f : found) {
            System.arraycopy(f, 0, all, p, f.length);
            p += f.length;
        }
        return all;
    }

    /**
     * The other direction: brings {@code target} back to the shadow, writing only the pages that
     * differ (a reused SVM's own writes since its last checkpoint, and the new checkpoint's pages
     * once they are in the shadow). Returns how many pages it wrote.
     */
    public long restore(ShadowMemory from, GuestRam target) {
        if (target.size() != from.size()) {
            throw new IllegalArgumentException("guest RAM is " + target.size() + " bytes but the shadow is " + from.size());
        }
        int stripe = Math.min(STRIPE, Math.min(target.chunkSize(), from.chunkSize()));
        List<Future<Long>> parts = new ArrayList<>();
        for (long off = 0; off < target.size(); off += stripe) {
            long start = off;
            int len = (int) Math.min(stripe, target.size() - off);
            parts.add(pool.submit(() -> restoreStripe(from.view(start, len), target, start)));
        }
        long written = 0;
        try {
            for (Future<Long> f : parts) {
                written += f.get();
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException("RAM restore interrupted", e);
        } catch (ExecutionException e) {
            throw new IllegalStateException("RAM restore failed: " + e.getCause(), e.getCause());
        }
        return written;
    }

    private static long restoreStripe(ByteBuffer shadow, GuestRam target, long baseOffset) {
        ByteBuffer live = target.view(baseOffset, shadow.limit());
        long n = 0;
        int pos = 0;
        int limit = shadow.limit();
        while (pos < limit) {
            int m = live.slice(pos, limit - pos).mismatch(shadow.slice(pos, limit - pos));
            if (m < 0) {
                break;
            }
            int pageStart = (pos + m) / GuestRam.PAGE_SIZE * GuestRam.PAGE_SIZE;
            target.write(baseOffset + pageStart, shadow.slice(pageStart, GuestRam.PAGE_SIZE));
            n++;
            pos = pageStart + GuestRam.PAGE_SIZE;
        }
        return n;
    }

    /** One stripe: mismatch, copy the page that differs, go on after it. */
    static long[] scanStripe(ByteBuffer live, ByteBuffer shadow, long baseOffset) {
        long[] out = new long[16];
        int n = 0;
        int pos = 0;
        int limit = live.limit();
        while (pos < limit) {
            int m = live.slice(pos, limit - pos).mismatch(shadow.slice(pos, limit - pos));
            if (m < 0) {
                break;
            }
            int page = (pos + m) / GuestRam.PAGE_SIZE;
            int pageStart = page * GuestRam.PAGE_SIZE;
            shadow.put(pageStart, live, pageStart, GuestRam.PAGE_SIZE);
            if (n == out.length) {
                out = java.util.Arrays.copyOf(out, n * 2);
            }
            out[n++] = (baseOffset + pageStart) / GuestRam.PAGE_SIZE;
            pos = pageStart + GuestRam.PAGE_SIZE;
        }
        return java.util.Arrays.copyOf(out, n);
    }
}
