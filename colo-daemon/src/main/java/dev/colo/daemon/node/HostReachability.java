package dev.colo.daemon.node;

import dev.colo.daemon.config.DaemonConfig;
import dev.colo.daemon.host.Witness;
import dev.colo.runtime.Lane;
import java.util.List;
import java.util.concurrent.CompletionStage;

/** The production checks: ICMP echo and TCP connects from the daemon's namespace, on probe lanes. */
public final class HostReachability implements Reachability {
    private final DaemonConfig cfg;
    private final LeastBusyLanes probe;
    private final LeastBusyLanes vmProbes;

    /**
     * The witness and peer-daemon checks on {@code probe}; the VM-address checks on their own
     * lanes, so that they run beside the peer-daemon check of one probe, and so that a probe's VM
     * check does not queue behind the secondary's watch of the same address.
     */
    public HostReachability(DaemonConfig cfg, Lane probe, List<Lane> vmProbes) {
        this.cfg = cfg;
        this.probe = new LeastBusyLanes(List.of(probe));
        this.vmProbes = new LeastBusyLanes(vmProbes);
    }

    private static Answer answer(Witness.Answer a) {
        return new Answer(a.answered(), a.rttMs(), a.evidence());
    }

    @Override
    public CompletionStage<Answer> witness() {
        return probe.run(() -> answer(Witness.ping(cfg.witness().address(), cfg.witness().timeoutMs(), 2)));
    }

    @Override
    public CompletionStage<Answer> peerDaemon() {
        // At least a second: a connect shorter than a SYN retransmission reads a lossy link as a dead
        // daemon (30% loss promoted a secondary beside a live primary with 300 ms). A refused
        // connection still answers at once.
        return probe.run(() -> answer(Witness.connect(cfg.peer().link(), Math.max(1000, 3 * cfg.witness().timeoutMs()))));
    }

    @Override
    public CompletionStage<Answer> vmAddress() {
        return vmProbes.run(() -> answer(Witness.ping(cfg.vm().ip(), cfg.witness().timeoutMs(), 3)));
    }
}
