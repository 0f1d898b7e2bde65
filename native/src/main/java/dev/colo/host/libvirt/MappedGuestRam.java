package dev.colo.host.libvirt;

import dev.colo.hypervisor.GuestRam;
import java.io.IOException;
import java.lang.reflect.Field;
import java.lang.reflect.Method;
import java.nio.ByteBuffer;
import java.nio.MappedByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;

/**
 * A guest RAM file mapped shared in 1 GiB chunks (a MappedByteBuffer holds at most 2 GiB).
 * {@link #close()} unmaps at once instead of waiting for the GC, since a new SVM RAM file is
 * mapped at every checkpoint; views must not be used after close.
 */
public final class MappedGuestRam implements GuestRam {
    static final int CHUNK = 1 << 30;

    private final Path file;
    private final long size;
    private volatile MappedByteBuffer[] chunks;

    private MappedGuestRam(Path file, long size, MappedByteBuffer[] chunks) {
        this.file = file;
        this.size = size;
        this.chunks = chunks;
    }

    /** Maps {@code size} bytes of {@code file} read-write and shared. */
    public static MappedGuestRam map(Path file, long size) throws IOException {
        try (FileChannel ch = FileChannel.open(file, StandardOpenOption.READ, StandardOpenOption.WRITE)) {
            long fileSize = ch.size();
            if (fileSize < size) {
                throw new IOException("guest RAM file " + file + " has " + fileSize + " bytes, expected " + size);
            }
            int n = (int) ((size + CHUNK - 1) / CHUNK);
            MappedByteBuffer[] chunks = new MappedByteBuffer[n];
            for (int i = 0; i < n; i++) {
                long off = (long) i * CHUNK;
                chunks[i] = ch.map(FileChannel.MapMode.READ_WRITE, off, Math.min(CHUNK, size - off));
            }
            return new MappedGuestRam(file, size, chunks);
        }
    }

    @Override
    public long size() {
        return size;
    }

    @Override
    public int chunkSize() {
        return CHUNK;
    }

    private MappedByteBuffer[] chunks() {
        MappedByteBuffer[] c = chunks;
        if (c == null) {
            throw new IllegalStateException("guest RAM " + file + " is unmapped");
        }
        return c;
    }

    private void check(long offset, int length) {
        if (offset < 0 || length < 0 || offset + length > size) {
            throw new IndexOutOfBoundsException("range " + offset + "+" + length + " outside guest RAM of " + size);
        }
    }

    @Override
    public void read(long offset, ByteBuffer dst) {
        check(offset, dst.remaining());
        MappedByteBuffer[] c = chunks();
        while (dst.hasRemaining()) {
            int idx = (int) (offset / CHUNK);
            int within = (int) (offset % CHUNK);
            int n = Math.min(dst.remaining(), c[idx].capacity() - within);
            dst.put(c[idx].slice(within, n));
            offset += n;
        }
    }

    @Override
    public void write(long offset, ByteBuffer src) {
        check(offset, src.remaining());
        MappedByteBuffer[] c = chunks();
        while (src.hasRemaining()) {
            int idx = (int) (offset / CHUNK);
            int within = (int) (offset % CHUNK);
            int n = Math.min(src.remaining(), c[idx].capacity() - within);
            ByteBuffer part = src.slice(src.position(), n);
            c[idx].put(within, part, 0, n);
            src.position(src.position() + n);
            offset += n;
        }
    }

    @Override
    public ByteBuffer view(long offset, int length) {
        check(offset, length);
        int idx = (int) (offset / CHUNK);
        int within = (int) (offset % CHUNK);
        if (within + length > chunks()[idx].capacity()) {
            throw new IllegalArgumentException("view crosses a mapping chunk boundary at " + offset);
        }
        return chunks()[idx].slice(within, length).asReadOnlyBuffer();
    }

    /**
     * Faults every page in now, so later writes inside a checkpoint's pause window do not pay for
     * page allocation (on tmpfs a first touch costs ~4 us per page: ~130 ms for 128 MiB).
     */
    @Override
    public void prefault() {
        for (MappedByteBuffer b : chunks()) {
            b.load();
        }
    }

    @Override
    public String describe() {
        return file.toString();
    }

    public Path file() {
        return file;
    }

    @Override
    public synchronized void close() {
        MappedByteBuffer[] c = chunks;
        chunks = null;
        if (c != null) {
            for (MappedByteBuffer b : c) {
                Unmapper.unmap(b);
            }
        }
    }

    /** Unmaps through {@code sun.misc.Unsafe.invokeCleaner}, which jdk.unsupported still exports. */
    private static final class Unmapper {
        private static final Object UNSAFE;
        private static final Method INVOKE_CLEANER;

        static {
            Object unsafe = null;
            Method m = null;
            try {
                Class<?> cls = Class.forName("sun.misc.Unsafe");
                Field f = cls.getDeclaredField("theUnsafe");
                f.setAccessible(true);
                unsafe = f.get(null);
                m = cls.getMethod("invokeCleaner", ByteBuffer.class);
            } catch (ReflectiveOperationException | RuntimeException e) {
                // Fall back to GC-driven unmapping.
            }
            UNSAFE = unsafe;
            INVOKE_CLEANER = m;
        }

        static void unmap(ByteBuffer b) {
            if (INVOKE_CLEANER != null) {
                try {
                    INVOKE_CLEANER.invoke(UNSAFE, b);
                } catch (ReflectiveOperationException e) {
                    // Leave it to the GC.
                }
            }
        }
    }
}
