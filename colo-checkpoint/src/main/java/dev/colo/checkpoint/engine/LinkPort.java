package dev.colo.checkpoint.engine;

import dev.colo.checkpoint.link.proto.Envelope;

/** Where the engine sends link messages: the TLS link in production, in memory in scenario tests. */
public interface LinkPort {
    /** Sends; false when the peer is not keeping up and the caller must wait for {@link #writable()}. */
    boolean send(Envelope message);

    boolean writable();
}
