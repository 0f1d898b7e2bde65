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

    public HostReachability(DaemonConfig cfg, Lane probe) {
        this.cfg = cfg;
        this.probe = probe;
    }

    private CompletionStage<Answer> on(Supplier<Witness.Answer> check) {
        CompletableFuture<Answer> f = new CompletableFuture<>();
        probe.execute(() -> {
            Witness.Answer a = check.get();
            f.complete(new Answer(a.answered(), a.rttMs(), a.evidence()));
        });
        return f;
    }

    @Override
    public CompletionStage<Answer> witness() {
        return on(() -> Witness.ping(cfg.witness().address(), cfg.witness().timeoutMs(), 2));
    }

    @Override
    public CompletionStage<Answer> peerDaemon() {
        return on(() -> Witness.connect(cfg.peer().link(), Math.max(1000, 3 * cfg.witness().timeoutMs())));
    }

    @Override
    public CompletionStage<Answer> vmAddress() {
        return on(() -> Witness.ping(cfg.vm().ip(), cfg.witness().timeoutMs(), 3));
    }
}
