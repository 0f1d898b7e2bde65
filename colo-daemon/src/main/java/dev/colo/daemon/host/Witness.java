package dev.colo.daemon.host;

import java.io.IOException;
import java.net.ConnectException;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.nio.channels.SelectionKey;
import java.nio.channels.Selector;
import java.nio.channels.SocketChannel;
import java.util.ArrayList;
import java.util.List;

/**
 * Reachability checks for failover decisions, Pacemaker-ping style: ICMP echo (as root, Java's
 * {@link InetAddress#isReachable} sends real ICMP) from this daemon's network namespace. Blocking;
 * call off the event loops.
 */
public final class Witness {
    private Witness() {}

    /** The answer and how long it took, worded for the log. */
    /** @param refused the host answered that nothing listens there: definitive, not a timeout */
    public record Answer(boolean answered, long rttMs, String evidence, boolean refused) {
        public Answer(boolean answered, long rttMs, String evidence) {
            this(answered, rttMs, evidence, false);
        }
    }

    /**
     * Opens (and closes) a TCP connection: proves a daemon listens there. A refusal means the host
     * is up but nothing listens; a timeout means the host or the path is gone.
     */
    /** A fresh connection attempt every this often within the window: one lost SYN proves nothing. */
    private static final long CONNECT_SPACING_MS = 100;

    /**
     * Does anything accept a TCP connection at {@code address} within {@code timeoutMs}? A new
     * attempt starts every {@value #CONNECT_SPACING_MS} ms, so on a lossy path "silent" means
     * every one of several SYNs (or their answers) was lost, not just the first: with 30% loss each
     * way one attempt fails half the time, ten fail together about once in a thousand. A refusal
     * answers at once.
     */
    public static Answer connect(InetSocketAddress address, long timeoutMs) {
        long t0 = System.nanoTime();
        String where = address.getHostString() + ":" + address.getPort();
        List<SocketChannel> open = new ArrayList<>();
        try (Selector selector = Selector.open()) {
            long deadline = t0 + timeoutMs * 1_000_000L;
            long nextAttempt = t0;
            int attempts = 0;
            while (true) {
                long now = System.nanoTime();
                if (now >= deadline) {
                    return new Answer(false, -1, where + " silent for " + timeoutMs + " ms (" + attempts + " attempts)");
                }
                if (now >= nextAttempt) {
                    SocketChannel ch = SocketChannel.open();
                    open.add(ch);
                    ch.configureBlocking(false);
                    attempts++;
                    if (ch.connect(address)) {
                        return accepted(where, t0);
                    }
                    ch.register(selector, SelectionKey.OP_CONNECT);
                    nextAttempt = now + CONNECT_SPACING_MS * 1_000_000L;
                }
                long waitMs = Math.max(1, (Math.min(deadline, nextAttempt) - System.nanoTime()) / 1_000_000);
                selector.select(waitMs);
                for (SelectionKey k : selector.selectedKeys()) {
                    try {
                        if (((SocketChannel) k.channel()).finishConnect()) {
                            return accepted(where, t0);
                        }
                    } catch (ConnectException e) {
                        return new Answer(false, -1, where + " refused (" + e.getMessage() + ")", true);
                    } catch (IOException e) {
                        k.cancel(); // this attempt failed some other way (unreachable); others go on
                    }
                }
                selector.selectedKeys().clear();
            }
        } catch (IOException e) {
            return new Answer(false, -1, where + " refused (" + e.getMessage() + ")", e instanceof ConnectException);
        } finally {
            for (SocketChannel ch : open) {
                try {
                    ch.close();
                } catch (IOException ignored) {
                    // closing a probe socket
                }
            }
        }
    }

    private static Answer accepted(String where, long t0) {
        long ms = (System.nanoTime() - t0) / 1_000_000;
        return new Answer(true, ms, where + " accepted a connection in " + ms + " ms");
    }

    public static Answer ping(String address, long timeoutMs, int attempts) {
        long t0 = System.nanoTime();
        for (int i = 0; i < attempts; i++) {
            try {
                if (InetAddress.getByName(address).isReachable((int) timeoutMs)) {
                    long ms = (System.nanoTime() - t0) / 1_000_000;
                    return new Answer(true, ms, address + " answered in " + ms + " ms");
                }
            } catch (IOException e) {
                return new Answer(false, -1, address + " unreachable: " + e.getMessage());
            }
        }
        return new Answer(false, -1, address + " silent for " + attempts + "x" + timeoutMs + " ms");
    }
}
