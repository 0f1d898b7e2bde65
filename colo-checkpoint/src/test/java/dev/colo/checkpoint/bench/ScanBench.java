package dev.colo.checkpoint.bench;

import dev.colo.checkpoint.dirty.DirtyPageScanner;
import dev.colo.checkpoint.dirty.ShadowMemory;
import dev.colo.hypervisor.GuestRam;
import java.nio.ByteBuffer;
import java.util.Arrays;
import java.util.Random;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;

/**
 * Dirty-page scan throughput (bench/checkpoint-scan): guest RAM of SIZE MiB in direct memory (as a
 * mapped RAM file is), DIRTY random pages written before each scan, 1 and 2 threads, median and
 * p99 of 15 scans after 5 warm-ups. Usage: ScanBench [SIZE_MIB=128,1024] [DIRTY=300]
 */
public final class ScanBench {
    /** Guest RAM over direct buffers, chunked at 1 GiB like a mapped RAM file. */
    static final class DirectRam implements GuestRam {
        final ByteBuffer[] chunks;
        final long size;

        DirectRam(long size) {
            this.size = size;
            int n = (int) ((size + (1L << 30) - 1) >> 30);
            chunks = new ByteBuffer[n];
            for (int i = 0; i < n; i++) {
                chunks[i] = ByteBuffer.allocateDirect((int) Math.min(1L << 30, size - ((long) i << 30)));
            }
        }

        @Override
        public long size() {
            return size;
        }

        @Override
        public void read(long offset, ByteBuffer dst) {
            dst.put(view(offset, dst.remaining()));
        }

        @Override
        public void write(long offset, ByteBuffer src) {
            chunks[(int) (offset >> 30)].put((int) (offset & ((1 << 30) - 1)), src, src.position(), src.remaining());
        }

        @Override
        public ByteBuffer view(long offset, int length) {
            return chunks[(int) (offset >> 30)].slice((int) (offset & ((1 << 30) - 1)), length);
        }

        @Override
        public int chunkSize() {
            return 1 << 30;
        }

        @Override
        public String describe() {
            return "direct";
        }

        @Override
        public void close() {
        }
    }

    public static void main(String[] args) {
        String sizes = args.length > 0 ? args[0] : "128,1024";
        int dirty = args.length > 1 ? Integer.parseInt(args[1]) : 300;
        System.out.printf("dirty-page scan: %d dirty pages per scan, %d cores available%n", dirty, Runtime.getRuntime().availableProcessors());
        for (String s : sizes.split(",")) {
            long size = Long.parseLong(s.trim()) << 20;
            DirectRam ram = new DirectRam(size);
            Random rnd = new Random(1);
            for (long off = 0; off < size; off += 4096) {
                ram.chunks[(int) (off >> 30)].putLong((int) (off & ((1 << 30) - 1)), rnd.nextLong()); // non-zero pages
            }
            ShadowMemory shadow = ShadowMemory.like(ram);
            shadow.copyAll(ram);
            for (int threads : new int[] {1, 2}) {
                ExecutorService pool = Executors.newFixedThreadPool(threads);
                DirtyPageScanner scanner = new DirtyPageScanner(pool);
                long[] times = new long[15];
                long found = 0;
                for (int i = -5; i < times.length; i++) {
                    for (int k = 0; k < dirty; k++) {
                        long page = (long) (rnd.nextDouble() * (size / 4096));
                        int idx = (int) ((page * 4096) >> 30);
                        int within = (int) ((page * 4096) & ((1 << 30) - 1));
                        ram.chunks[idx].put(within + rnd.nextInt(4096), (byte) rnd.nextInt());
                    }
                    long t0 = System.nanoTime();
                    long[] d = scanner.scanAndUpdate(ram, shadow);
                    long t = System.nanoTime() - t0;
                    if (i >= 0) {
                        times[i] = t;
                        found += d.length;
                    }
                }
                pool.shutdown();
                Arrays.sort(times);
                long median = times[times.length / 2];
                long p99 = times[times.length - 1];
                System.out.printf("  %5d MiB  %d thread(s): median %7.2f ms (%5.1f GB/s)  p99 %7.2f ms  dirty found per scan %.0f%n",
                        size >> 20, threads, median / 1e6, size / (median / 1e9) / 1e9, p99 / 1e6, found / (double) times.length);
            }
            long t0 = System.nanoTime();
            shadow.copyAll(ram);
            System.out.printf("  %5d MiB  full copy into the shadow: %.2f ms%n", size >> 20, (System.nanoTime() - t0) / 1e6);
        }
    }
}
