package dev.colo.checkpoint.disk;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;

/**
 * The secondary's copy of one disk of the PVM: a raw image that holds the disk as of the last
 * committed checkpoint. Only the daemon writes it, and only while no SVM runs on it (before the
 * first SVM, or while the SVM is stopped in a checkpoint); the SVMs see it through QEMU's
 * replication overlays, which keep their own writes apart. Writes are plain {@code pwrite}s through
 * the page cache, which QEMU's raw driver reads through too, and {@link #sync()} makes them durable
 * before the checkpoint is acknowledged.
 */
public final class ReplicaDisk implements AutoCloseable {
    private static final int ZERO_CHUNK = 1 << 20;
    private static final ByteBuffer ZEROES = ByteBuffer.allocateDirect(ZERO_CHUNK).asReadOnlyBuffer();

    /** Where the bytes live: a file ({@link FileChannel} has these very methods), or memory in the simulation. */
    public interface Storage extends AutoCloseable {
        int read(ByteBuffer dst, long position) throws IOException;

        int write(ByteBuffer src, long position) throws IOException;

        /** Makes what was written durable. */
        void force(boolean metaData) throws IOException;

        @Override
        void close() throws IOException;
    }

    private final String name;
    private final Path path;
    private final long size;
    private final Storage file;
    private final ByteBuffer scratch = ByteBuffer.allocateDirect(ZERO_CHUNK);
    private long bytesWritten;

    /** A copy over storage the caller made ({@code path} names it in logs). */
    public ReplicaDisk(String name, Path path, long size, Storage file) {
        this.name = name;
        this.path = path;
        this.size = size;
        this.file = file;
    }

    /** Creates (or empties) the image at {@code path}: {@code size} bytes of zeroes, sparse. */
    public static ReplicaDisk create(String name, Path path, long size) throws IOException {
        FileChannel f = FileChannel.open(path, StandardOpenOption.CREATE, StandardOpenOption.READ, StandardOpenOption.WRITE,
                StandardOpenOption.TRUNCATE_EXISTING);
        try {
            if (size > 0) {
                f.write(ByteBuffer.allocate(1), size - 1);
            }
            return over(name, path, size, f);
        } catch (IOException e) {
            f.close();
            Files.deleteIfExists(path);
            throw e;
        }
    }

    /** Opens the existing image at {@code path} as it is (a copy kept from an earlier pairing). */
    public static ReplicaDisk open(String name, Path path, long size) throws IOException {
        return over(name, path, size, FileChannel.open(path, StandardOpenOption.READ, StandardOpenOption.WRITE));
    }

    private static ReplicaDisk over(String name, Path path, long size, FileChannel f) {
        return new ReplicaDisk(name, path, size, new Storage() {
            @Override
            public int read(ByteBuffer dst, long position) throws IOException {
                return f.read(dst, position);
            }

            @Override
            public int write(ByteBuffer src, long position) throws IOException {
                return f.write(src, position);
            }

            @Override
            public void force(boolean metaData) throws IOException {
                f.force(metaData);
            }

            @Override
            public void close() throws IOException {
                f.close();
            }
        });
    }

    public String name() {
        return name;
    }

    public Path path() {
        return path;
    }

    public long size() {
        return size;
    }

    /** Data bytes written so far (zeroes that were already zero do not count). */
    public long bytesWritten() {
        return bytesWritten;
    }

    /** Applies one write. Zeroes are written only where the image is not zero already, so a new image stays sparse. */
    public void apply(DiskWriteLog.Extent e) {
        check(e.offset(), e.length());
        try {
            if (e.zero()) {
                zero(e.offset(), e.length());
            } else {
                ByteBuffer b = ByteBuffer.wrap(e.data());
                long at = e.offset();
                while (b.hasRemaining()) {
                    at += file.write(b, at);
                }
                bytesWritten += e.length();
            }
        } catch (IOException ex) {
            throw new UncheckedIOException("cannot write disk " + name + " (" + path + ") at " + e.offset() + ": " + ex.getMessage(), ex);
        }
    }

    private void zero(long offset, long length) throws IOException {
        long end = offset + length;
        for (long at = offset; at < end; ) {
            int n = (int) Math.min(ZERO_CHUNK, end - at);
            scratch.clear().limit(n);
            int read = 0;
            while (scratch.hasRemaining()) {
                int r = file.read(scratch, at + scratch.position());
                if (r < 0) {
                    break;
                }
                read += r;
            }
            scratch.flip();
            if (read < n || scratch.mismatch(ZEROES.duplicate().limit(n)) != -1) {
                ByteBuffer z = ZEROES.duplicate().limit(n);
                long w = at;
                while (z.hasRemaining()) {
                    w += file.write(z, w);
                }
                bytesWritten += n;
            }
            at += n;
        }
    }

    private void check(long offset, long length) {
        if (offset < 0 || length < 0 || offset > size || length > size - offset) {
            throw new IllegalArgumentException("write of " + length + " bytes at " + offset + " is outside disk " + name + " ("
                    + size + " bytes)");
        }
    }

    /** Makes every applied write durable (fdatasync). */
    public void sync() {
        try {
            file.force(false);
        } catch (IOException ex) {
            throw new UncheckedIOException("cannot sync disk " + name + " (" + path + "): " + ex.getMessage(), ex);
        }
    }

    /** Reads {@code length} bytes at {@code offset} (tests and checks). */
    public byte[] read(long offset, int length) {
        check(offset, length);
        ByteBuffer b = ByteBuffer.allocate(length);
        try {
            while (b.hasRemaining()) {
                if (file.read(b, offset + b.position()) < 0) {
                    break;
                }
            }
        } catch (IOException ex) {
            throw new UncheckedIOException(ex);
        }
        return b.array();
    }

    @Override
    public void close() {
        try {
            file.close();
        } catch (IOException ignored) {
            // nothing more to do with it
        }
    }
}
