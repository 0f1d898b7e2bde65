package dev.colo.daemon.host;

import java.io.IOException;
import java.net.InetAddress;

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
    public static Answer connect(java.net.InetSocketAddress address, long timeoutMs) {
        long t0 = System.nanoTime();
        try (java.net.Socket s = new java.net.Socket()) {
            s.connect(address, (int) timeoutMs);
            long ms = (System.nanoTime() - t0) / 1_000_000;
            return new Answer(true, ms, address.getHostString() + ":" + address.getPort() + " accepted a connection in " + ms + " ms");
        } catch (java.net.SocketTimeoutException e) {
            return new Answer(false, -1, address.getHostString() + ":" + address.getPort() + " silent for " + timeoutMs + " ms");
        } catch (IOException e) {
            return new Answer(false, -1, address.getHostString() + ":" + address.getPort() + " refused (" + e.getMessage() + ")",
                    e instanceof java.net.ConnectException);
        }
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
