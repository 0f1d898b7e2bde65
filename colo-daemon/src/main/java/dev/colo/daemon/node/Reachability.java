package dev.colo.daemon.node;

import java.util.concurrent.CompletionStage;

/**
 * Out-of-band evidence for failover decisions, Pacemaker-ping style. Each check completes with an
 * answer worded for the log; none blocks the caller. Production: ICMP and TCP from the daemon's
 * namespace ({@link HostReachability}); the pair simulation: the simulated network's state.
 */
public interface Reachability {
    /**
     * The answer and how long it took. A refusal and silence both count as "not answered": the
     * probe needs the VM's silence as well either way; the evidence text tells them apart.
     */
    record Answer(boolean answered, long rttMs, String evidence) {}

    /** Does the witness (a third address both hosts can reach) answer? */
    CompletionStage<Answer> witness();

    /** Does the peer daemon accept a fresh connection on its link address? */
    CompletionStage<Answer> peerDaemon();

    /** Does the protected VM's address answer on the LAN? */
    CompletionStage<Answer> vmAddress();
}
