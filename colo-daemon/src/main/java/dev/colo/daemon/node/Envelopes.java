package dev.colo.daemon.node;

import dev.colo.checkpoint.link.LinkProtocol;
import dev.colo.checkpoint.link.proto.Envelope;
import dev.colo.checkpoint.link.proto.Role;
import dev.colo.checkpoint.link.proto.Status;

/** Envelopes as this node sends them: protocol version, pair, the node's current term and role. */
final class Envelopes {
    private final String pair;
    private final FailoverControl failover;

    Envelopes(String pair, FailoverControl failover) {
        this.pair = pair;
        this.failover = failover;
    }

    Envelope.Builder builder() {
        return Envelope.newBuilder().setProtocolVersion(LinkProtocol.VERSION).setPair(pair).setTerm(failover.term())
                .setRole(failover.actsAsPrimary() ? Role.PRIMARY : Role.SECONDARY);
    }

    Envelope error(Status status, String detail) {
        return builder().setError(dev.colo.checkpoint.link.proto.Error.newBuilder().setStatus(status).setDetail(detail)).build();
    }

    long term() {
        return failover.term();
    }
}
