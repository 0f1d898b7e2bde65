package dev.colo.host.tap;

import com.sun.jna.LastErrorException;
import com.sun.jna.Memory;
import dev.colo.host.posix.Fd;
import dev.colo.host.posix.Libc;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;

/**
 * A Linux tap device opened through {@code /dev/net/tun} with {@code IFF_TAP | IFF_NO_PI}: each
 * read returns one Ethernet frame, each write sends one. The device exists while this is open
 * unless it was made persistent by someone else.
 */
public final class TapDevice implements AutoCloseable {
    private static final long TUNSETIFF = 0x400454caL;
    private static final short IFF_TAP = 0x0002;
    private static final short IFF_NO_PI = 0x1000;
    private static final int IFNAMSIZ = 16;
    /** Largest frame we ever read: jumbo-free Ethernet with a VLAN tag and headroom. */
    public static final int MAX_FRAME = 65_550;

    private final String name;
    private final Fd fd;

    private TapDevice(String name, Fd fd) {
        this.name = name;
        this.fd = fd;
    }

    /**
     * Opens (creating if needed) the tap device {@code name}.
     *
     * @throws IOException with the kernel's reason, e.g. no permission or a name in use
     */
    public static TapDevice open(String name) throws IOException {
        byte[] nameBytes = name.getBytes(StandardCharsets.US_ASCII);
        if (nameBytes.length == 0 || nameBytes.length >= IFNAMSIZ) {
            throw new IllegalArgumentException("tap name must be 1.." + (IFNAMSIZ - 1) + " ASCII characters: " + name);
        }
        int raw;
        try {
            raw = Libc.INSTANCE.open("/dev/net/tun", Libc.O_RDWR | Libc.O_CLOEXEC);
        } catch (LastErrorException e) {
            throw new IOException("cannot open /dev/net/tun: " + Fd.describe(e), e);
        }
        Fd fd = new Fd(raw, "tap " + name);
        try (Memory ifreq = new Memory(40)) {
            ifreq.clear();
            ifreq.write(0, nameBytes, 0, nameBytes.length);
            ifreq.setShort(IFNAMSIZ, (short) (IFF_TAP | IFF_NO_PI));
            Libc.INSTANCE.ioctl(fd.number(), TUNSETIFF, ifreq);
            String actual = ifreq.getString(0, "US-ASCII");
            return new TapDevice(actual, fd);
        } catch (LastErrorException e) {
            fd.close();
            throw new IOException("TUNSETIFF for tap " + name + " failed: " + Fd.describe(e), e);
        }
    }

    public String name() {
        return name;
    }

    /**
     * Reads one frame into a direct buffer of at least {@link #MAX_FRAME} bytes remaining.
     *
     * @return the frame length, or 0 when none arrived before the deadline
     */
    public int readFrame(ByteBuffer dst, long deadlineNanos) throws IOException {
        int n = fd.read(dst, deadlineNanos);
        if (n < 0) {
            throw new IOException("tap " + name + " was closed underneath us");
        }
        return n;
    }

    /** Writes one Ethernet frame (the remaining bytes of a direct buffer). */
    public void writeFrame(ByteBuffer frame, long deadlineNanos) throws IOException {
        fd.writeFully(frame, deadlineNanos);
    }

    public boolean isOpen() {
        return fd.isOpen();
    }

    @Override
    public void close() {
        fd.close();
    }

    @Override
    public String toString() {
        return "TapDevice[" + name + "]";
    }
}
