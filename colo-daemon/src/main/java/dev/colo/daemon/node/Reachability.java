package dev.colo.daemon.node;

import java.util.concurrent.CompletionStage;

/**
 * Out-of-band evidence for failover decisions, Pacemaker-ping style. Each check completes with an
 * answer worded for the log; none blocks the caller. Production: ICMP and TCP from the daemon's
 * namespace ({@link HostReachability}); the pair simulation: the simulated network's state.
 */
public interface Reachability {
    /**
     * The answer and how long it took. {@code refused}: the host answered that nothing listens
     * (definitive), as opposed to silence.
     */
    record Answer(boolean answered, long rttMs, String evidence, boolean refused) {
        public Answer(boolean answered, long rttMs, String evidence) {
            this(answered, rttMs, evidence, false);
        }
    }

    /** Does the witness (a third address both hosts can reach) answer? */
    CompletionStage<Answer> witness();

    /** Does the peer daemon accept a fresh connection on its link address? */
    CompletionStage<Answer> peerDaemon();

    /** Does the protected VM's address answer on the LAN? */
    CompletionStage<Answer> vmAddress();
}
