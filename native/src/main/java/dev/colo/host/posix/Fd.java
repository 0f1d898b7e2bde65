package dev.colo.host.posix;

import com.sun.jna.LastErrorException;
import com.sun.jna.Memory;
import com.sun.jna.Pointer;
import java.io.IOException;
import java.io.InterruptedIOException;
import java.nio.ByteBuffer;
import java.util.concurrent.TimeUnit;

/**
 * A raw file descriptor owned by this process: poll-bounded reads and writes, closed exactly once.
 * Used for socketpairs handed to QEMU and for tap devices.
 */
public final class Fd implements AutoCloseable {
    private static final Libc LIBC = Libc.INSTANCE;

    private final String what;
    private volatile int fd;

    public Fd(int fd, String what) {
        this.fd = fd;
        this.what = what;
    }

    /** A connected AF_UNIX stream socketpair; both ends close-on-exec. */
    public static Fd[] socketPair(String what) throws IOException {
        int[] fds = new int[2];
        try {
            LIBC.socketpair(Libc.AF_UNIX, Libc.SOCK_STREAM | Libc.SOCK_CLOEXEC, 0, fds);
        } catch (LastErrorException e) {
            throw new IOException("socketpair for " + what + " failed: " + describe(e), e);
        }
        return new Fd[] {new Fd(fds[0], what + "/local"), new Fd(fds[1], what + "/remote")};
    }

    /**
     * An anonymous in-memory file ({@code memfd_create}) and a second, write-only descriptor of the
     * same file: the write-only one can be handed to QEMU as an fdset member, which insists that the
     * access mode matches the mode it opens with; the read-write one reads what QEMU wrote.
     *
     * @return {read-write, write-only}
     */
    public static Fd[] memFile(String what) throws IOException {
        int rw;
        try {
            rw = LIBC.memfd_create(what, Libc.MFD_CLOEXEC);
        } catch (LastErrorException e) {
            throw new IOException("memfd_create for " + what + " failed: " + describe(e), e);
        }
        try {
            int wo = LIBC.open("/proc/self/fd/" + rw, Libc.O_WRONLY | Libc.O_CLOEXEC);
            return new Fd[] {new Fd(rw, what + "/read"), new Fd(wo, what + "/write-only")};
        } catch (LastErrorException e) {
            LIBC.close(rw);
            throw new IOException("reopening the memfd of " + what + " write-only failed: " + describe(e), e);
        }
    }

    /** Moves the file offset back to 0 (for every descriptor that shares this open file description). */
    public void rewind() throws IOException {
        try {
            LIBC.lseek(number(), 0, 0 /* SEEK_SET */);
        } catch (LastErrorException e) {
            throw new IOException("rewinding " + what + " failed: " + describe(e), e);
        }
    }

    /** The whole content of a regular file (e.g. a {@link #memFile}), read from offset 0. */
    public byte[] readAll() throws IOException {
        try {
            long size = LIBC.lseek(number(), 0, 2 /* SEEK_END */);
            if (size > Integer.MAX_VALUE - 16) {
                throw new IOException(what + " holds " + size + " bytes, too many to read at once");
            }
            byte[] out = new byte[(int) size];
            try (Memory m = new Memory(Math.max(1, size))) {
                long off = 0;
                while (off < size) {
                    long n = LIBC.pread(number(), m.share(off), size - off, off);
                    if (n <= 0) {
                        throw new IOException(what + " ended after " + off + " of " + size + " bytes");
                    }
                    off += n;
                }
                m.read(0, out, 0, (int) size);
            }
            return out;
        } catch (LastErrorException e) {
            throw new IOException("reading " + what + " failed: " + describe(e), e);
        }
    }

    public int number() {
        int n = fd;
        if (n < 0) {
            throw new IllegalStateException(what + " is closed");
        }
        return n;
    }

    public boolean isOpen() {
        return fd >= 0;
    }

    /**
     * Waits until the fd is readable (or writable) or the deadline passes.
     *
     * @return false on timeout
     */
    public boolean await(boolean forWrite, long deadlineNanos) throws IOException {
        try (Memory pfd = new Memory(8)) {
            while (true) {
                long leftMs = TimeUnit.NANOSECONDS.toMillis(deadlineNanos - System.nanoTime());
                if (leftMs <= 0) {
                    return false;
                }
                pfd.setInt(0, number());
                pfd.setShort(4, forWrite ? Libc.POLLOUT : Libc.POLLIN);
                pfd.setShort(6, (short) 0);
                int n;
                try {
                    n = LIBC.poll(pfd, 1, (int) Math.min(leftMs, 1000));
                } catch (LastErrorException e) {
                    if (e.getErrorCode() == Libc.EINTR) {
                        continue;
                    }
                    throw new IOException("poll on " + what + " failed: " + describe(e), e);
                }
                if (n > 0) {
                    return true;
                }
                if (Thread.currentThread().isInterrupted()) {
                    throw new InterruptedIOException("interrupted while waiting on " + what);
                }
            }
        }
    }

    /**
     * Reads up to {@code dst.remaining()} bytes into a direct buffer.
     *
     * @return bytes read, 0 when nothing arrived before the deadline, -1 at end of stream
     */
    public int read(ByteBuffer dst, long deadlineNanos) throws IOException {
        if (!dst.isDirect()) {
            throw new IllegalArgumentException("direct buffer required");
        }
        if (!await(false, deadlineNanos)) {
            return 0;
        }
        Pointer p = com.sun.jna.Native.getDirectBufferPointer(dst).share(dst.position());
        try {
            long n = LIBC.read(number(), p, dst.remaining());
            if (n == 0) {
                return -1;
            }
            dst.position(dst.position() + (int) n);
            return (int) n;
        } catch (LastErrorException e) {
            if (e.getErrorCode() == Libc.EAGAIN || e.getErrorCode() == Libc.EINTR) {
                return 0;
            }
            throw new IOException("read from " + what + " failed: " + describe(e), e);
        }
    }

    /**
     * The most one write asks of the socket. The descriptor blocks, and a blocking write waits until
     * all of its bytes fit; poll's "writable" on a Unix socket promises about three quarters of the
     * send buffer (~150 KiB by default), so a write no larger than this returns at once and the
     * deadline holds even when the peer stops reading.
     */
    static final int WRITE_CHUNK = 64 << 10;

    /** Writes all of {@code src} (a direct buffer) or throws when the deadline passes first. */
    public void writeFully(ByteBuffer src, long deadlineNanos) throws IOException {
        if (!src.isDirect()) {
            throw new IllegalArgumentException("direct buffer required");
        }
        while (src.hasRemaining()) {
            if (!await(true, deadlineNanos)) {
                throw new IOException("write to " + what + " timed out with " + src.remaining() + " bytes left");
            }
            Pointer p = com.sun.jna.Native.getDirectBufferPointer(src).share(src.position());
            try {
                long n = LIBC.write(number(), p, Math.min(src.remaining(), WRITE_CHUNK));
                src.position(src.position() + (int) n);
            } catch (LastErrorException e) {
                if (e.getErrorCode() == Libc.EAGAIN || e.getErrorCode() == Libc.EINTR) {
                    continue;
                }
                throw new IOException("write to " + what + " failed: " + describe(e), e);
            }
        }
    }

    /** Half-closes a socket for writing so the peer sees end of stream. */
    public void shutdownOutput() throws IOException {
        try {
            LIBC.shutdown(number(), Libc.SHUT_WR);
        } catch (LastErrorException e) {
            throw new IOException("shutdown of " + what + " failed: " + describe(e), e);
        }
    }

    @Override
    public void close() {
        int n = fd;
        fd = -1;
        if (n >= 0) {
            try {
                LIBC.close(n);
            } catch (LastErrorException ignored) {
                // The fd is released by the kernel even when close reports an error.
            }
        }
    }

    public static String describe(LastErrorException e) {
        return LIBC.strerror(e.getErrorCode()) + " (errno " + e.getErrorCode() + ")";
    }

    @Override
    public String toString() {
        return what + "[fd=" + fd + "]";
    }
}
