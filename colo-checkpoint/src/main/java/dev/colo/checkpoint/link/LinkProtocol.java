package dev.colo.checkpoint.link;

import dev.colo.checkpoint.link.proto.Envelope;
import dev.colo.checkpoint.link.proto.Error;
import dev.colo.checkpoint.link.proto.Status;

/** Constants and checks of the link protocol. */
public final class LinkProtocol {
    /** Bump only for incompatible changes; peers must match exactly. */
    public static final int VERSION = 3;
    /** Largest envelope on the wire: a page batch of 256 pages plus headers fits with room to spare. */
    public static final int MAX_FRAME = 16 << 20;

    private LinkProtocol() {}

    /** An error envelope telling the peer why we refuse it. */
    public static Envelope refusal(String pair, long term, Status status, String detail, int peerVersion) {
        return Envelope.newBuilder().setProtocolVersion(VERSION).setPair(pair).setTerm(term)
                .setError(Error.newBuilder().setStatus(status).setDetail(detail).setPeerProtocolVersion(peerVersion)).build();
    }
}
