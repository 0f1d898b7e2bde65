package dev.colo.daemon.node;

import dev.colo.checkpoint.engine.LinkPort;
import dev.colo.checkpoint.link.proto.Envelope;

/**
 * The replication link to the peer daemon, as a node sees it: one session at a time, FIFO within a
 * session, messages lost when a session ends. Production: mutual TLS ({@link TlsPeerLink}); the
 * pair simulation: a simulated link that delays, stalls, cuts and partitions.
 */
public interface PeerLink extends LinkPort, AutoCloseable {
    /** Link events. {@link #onMessage} is called in order; none of them may block. */
    interface Listener {
        void onUp(String peerNode);

        void onMessage(Envelope message);

        void onDown(String reason);
    }

    /** Starts listening and (if this side dials) connecting; events go to {@code listener}. */
    void start(Listener listener) throws Exception;

    boolean connected();

    @Override
    void close();
}
