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
