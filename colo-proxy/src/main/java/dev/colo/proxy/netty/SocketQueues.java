package dev.colo.proxy.netty;

import java.io.IOException;
import java.net.InetSocketAddress;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.Locale;

/**
 * How many bytes of one loopback TCP connection are still queued in the kernel: the peer's
 * unread receive queue plus our unsent send queue, read from {@code /proc/thread-self/net/tcp}. The file
 * is opened once in the namespace the sockets live in (a {@code /proc/net} file shows the network
 * namespace of whoever opened it) and read again from its start each time. Linux only.
 */
public final class SocketQueues implements AutoCloseable {
    private final FileChannel tcp;
    private final ByteBuffer buf = ByteBuffer.allocate(1 << 16);

    private SocketQueues(FileChannel tcp) {
        this.tcp = tcp;
    }

    /** Opens the table of the calling thread's network namespace. */
    public static SocketQueues open() throws IOException {
        // thread-self: a thread that entered another namespace with setns sees its own table there;
        // /proc/self/net shows the namespace of the process's main thread.
        return new SocketQueues(FileChannel.open(Path.of("/proc/thread-self/net/tcp"), StandardOpenOption.READ));
    }

    /**
     * Bytes queued between {@code ours} and {@code theirs}: the receive queue the peer has not read
     * plus what our side has not sent. -1 when the connection is not in the table.
     */
    public synchronized long queued(InetSocketAddress ours, InetSocketAddress theirs) {
        String us = hex(ours);
        String them = hex(theirs);
        long total = -1;
        try {
            StringBuilder text = new StringBuilder();
            long pos = 0;
            while (true) {
                buf.clear();
                int n = tcp.read(buf, pos);
                if (n <= 0) {
                    break;
                }
                pos += n;
                text.append(new String(buf.array(), 0, n, StandardCharsets.US_ASCII));
            }
            for (String line : text.toString().split("\n")) {
                String[] f = line.trim().split("\\s+");
                if (f.length < 5 || !f[4].contains(":")) {
                    continue;
                }
                String[] q = f[4].split(":");
                if (f[1].equals(them) && f[2].equals(us)) {
                    total = Math.max(total, 0) + Long.parseLong(q[1], 16); // what the peer has not read
                } else if (f[1].equals(us) && f[2].equals(them)) {
                    total = Math.max(total, 0) + Long.parseLong(q[0], 16); // what we have not sent
                }
            }
        } catch (IOException | RuntimeException e) {
            return -1;
        }
        return total;
    }

    /** {@code 0100007F:1F90}, as /proc/net/tcp writes 127.0.0.1:8080 (little-endian IPv4). */
    static String hex(InetSocketAddress a) {
        byte[] ip = a.getAddress().getAddress();
        if (ip.length != 4) {
            return "?";
        }
        return String.format(Locale.ROOT, "%02X%02X%02X%02X:%04X", ip[3] & 0xff, ip[2] & 0xff, ip[1] & 0xff, ip[0] & 0xff, a.getPort());
    }

    @Override
    public void close() {
        try {
            tcp.close();
        } catch (IOException e) {
            // nothing to do
        }
    }
}
