package dev.colo.daemon.node;

import dev.colo.daemon.config.DaemonConfig;
import dev.colo.daemon.host.Witness;
import dev.colo.runtime.Lane;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionStage;
import java.util.function.Supplier;

/** The production checks: ICMP echo and TCP connects from the daemon's namespace, on the probe lane. */
public final class HostReachability implements Reachability {
    private final DaemonConfig cfg;
    private final Lane probe;
    private final Lane vmProbe;

    /** Two lanes, so the peer-daemon and VM-address checks of one probe run side by side. */
    public HostReachability(DaemonConfig cfg, Lane probe, Lane vmProbe) {
        this.cfg = cfg;
        this.probe = probe;
        this.vmProbe = vmProbe;
    }

    private CompletionStage<Answer> on(Lane lane, Supplier<Witness.Answer> check) {
        CompletableFuture<Answer> f = new CompletableFuture<>();
        lane.execute(() -> {
            Witness.Answer a = check.get();
            f.complete(new Answer(a.answered(), a.rttMs(), a.evidence()));
        });
        return f;
    }

    @Override
    public CompletionStage<Answer> witness() {
        return on(probe, () -> Witness.ping(cfg.witness().address(), cfg.witness().timeoutMs(), 2));
    }

    @Override
    public CompletionStage<Answer> peerDaemon() {
        // At least a second: a connect shorter than a SYN retransmission reads a lossy link as a dead
        // daemon (30% loss promoted a secondary beside a live primary with 300 ms). A refused
        // connection still answers at once.
        return on(probe, () -> Witness.connect(cfg.peer().link(), Math.max(1000, 3 * cfg.witness().timeoutMs())));
    }

    @Override
    public CompletionStage<Answer> vmAddress() {
        return on(vmProbe, () -> Witness.ping(cfg.vm().ip(), cfg.witness().timeoutMs(), 3));
    }
}
