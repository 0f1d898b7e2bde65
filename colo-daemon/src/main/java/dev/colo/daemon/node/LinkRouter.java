package dev.colo.daemon.node;

import dev.colo.checkpoint.link.proto.CheckpointAck;
import dev.colo.checkpoint.link.proto.Envelope;
import dev.colo.checkpoint.link.proto.Failover;
import dev.colo.checkpoint.link.proto.Fence;
import dev.colo.checkpoint.link.proto.FrameBatch;
import dev.colo.checkpoint.link.proto.PairReply;
import dev.colo.checkpoint.link.proto.PairRequest;
import dev.colo.checkpoint.link.proto.Role;
import dev.colo.runtime.Lane;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Turns each message from the peer into one typed call on the lane that owns it: frames to the
 * path, checkpoint traffic to the engine or sink (which queue it on their own lanes), everything
 * else to the control lane. Every message proves the peer alive and carries its term; a peer that
 * acts as primary in an older term than ours is told it is fenced, and its messages are dropped.
 */
final class LinkRouter implements PeerLink.Listener {
    private static final Logger log = LoggerFactory.getLogger(LinkRouter.class);

    /** The node's side of each message. */
    interface PeerMessages {
        void onLinkUp(String peerNode);

        void onLinkDown(String reason);

        /** Path lane. */
        void onFrames(FrameBatch batch);

        /** Begin, pages, device state, commit and abort, in order (any lane; the sink queues them). */
        void onCheckpointMessage(Envelope e);

        /** Any lane; the engine queues it. */
        void onCheckpointAck(CheckpointAck ack);

        void onPairRequest(long primaryTerm, PairRequest request);

        void onPairReply(PairReply reply);

        void onUnpair(String reason, boolean keepDiskCopies);

        void onFailover(Failover failover);

        void onFence(Fence fence);

        void onError(dev.colo.checkpoint.link.proto.Error error);

        /** A stale primary spoke (term {@code staleTerm}): tell it. */
        void onStalePrimary(long staleTerm);
    }

    private final FailoverControl failover;
    private final Lane control;
    private final Lane path;
    private final PeerMessages node;
    private long staleDropped;

    LinkRouter(FailoverControl failover, Lane control, Lane path, PeerMessages node) {
        this.failover = failover;
        this.control = control;
        this.path = path;
        this.node = node;
    }

    @Override
    public void onUp(String peerNode) {
        control.execute(() -> node.onLinkUp(peerNode));
    }

    @Override
    public void onDown(String reason) {
        control.execute(() -> node.onLinkDown(reason));
    }

    @Override
    public void onMessage(Envelope m) {
        failover.onPeerAlive(m.getTerm());
        if (m.getTerm() < failover.term() && m.getRole() == Role.PRIMARY) {
            staleDropped++;
            if (staleDropped == 1 || staleDropped % 1000 == 0) {
                log.atWarn().addKeyValue("peer_term", m.getTerm()).addKeyValue("term", failover.term()).addKeyValue("dropped", staleDropped)
                        .log("message from a primary in an older term dropped; fencing it");
            }
            long stale = m.getTerm();
            control.execute(() -> node.onStalePrimary(stale));
            return;
        }
        switch (m.getBodyCase()) {
            case HEARTBEAT -> failover.onPeerHeartbeat(m.getHeartbeat());
            case FRAMES -> path.execute(() -> node.onFrames(m.getFrames()));
            case CHECKPOINT_BEGIN, PRECOPY, PAGES, DISK_WRITES, DEVICE_STATE, CHECKPOINT_COMMIT, CHECKPOINT_ABORT -> node.onCheckpointMessage(m);
            case CHECKPOINT_ACK -> node.onCheckpointAck(m.getCheckpointAck());
            case PAIR_REQUEST -> control.execute(() -> node.onPairRequest(m.getTerm(), m.getPairRequest()));
            case PAIR_REPLY -> control.execute(() -> node.onPairReply(m.getPairReply()));
            case UNPAIR -> control.execute(() -> node.onUnpair(m.getUnpair().getReason(), m.getUnpair().getKeepDiskCopies()));
            case FAILOVER -> control.execute(() -> node.onFailover(m.getFailover()));
            case FENCE -> control.execute(() -> node.onFence(m.getFence()));
            case ERROR -> control.execute(() -> node.onError(m.getError()));
            default -> log.atDebug().addKeyValue("body", m.getBodyCase()).log("link message ignored");
        }
    }
}
