package dev.colo.daemon.node;

import dev.colo.daemon.failover.FailoverStateMachine.Verdict;
import dev.colo.runtime.Clock;
import dev.colo.daemon.node.Reachability.Answer;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionStage;

/**
 * Turns reachability checks into a failover verdict. The primary asks only the witness. The
 * secondary asks the witness and, if it answers, whether anyone still serves the VM: the primary
 * daemon on a fresh connection (the replication stream may only be stalled behind bulk data), then
 * the VM's own address (a partition that drops the link port also drops that probe).
 */
final class WitnessProbe {
    private final Reachability reach;
    private final Clock clock;

    WitnessProbe(Reachability reach, Clock clock) {
        this.reach = reach;
        this.clock = clock;
    }

    CompletionStage<Verdict> probe(boolean secondarySide) {
        long asked = clock.nowNs();
        return reach.witness().thenCompose(w -> {
            String evidence = "witness " + w.evidence();
            if (!secondarySide || !w.answered()) {
                return CompletableFuture.completedFuture(verdict(w.answered(), false, evidence, asked));
            }
            // Both at once: the probe takes as long as the slower one, not their sum. Even a refused
            // connection needs a silent VM too: a firewall that rejects looks the same as a dead
            // daemon, and only the VM's own silence shows that nobody serves it.
            CompletableFuture<Answer> vm = reach.vmAddress().toCompletableFuture();
            return reach.peerDaemon().thenCompose(d -> {
                String e2 = evidence + "; primary daemon " + d.evidence();
                if (d.answered()) {
                    return CompletableFuture.completedFuture(verdict(true, true, e2, asked));
                }
                return vm.thenApply(v -> verdict(true, v.answered(), e2 + "; VM address " + v.evidence(), asked));
            });
        });
    }

    private Verdict verdict(boolean witness, boolean primaryAlive, String evidence, long asked) {
        return new Verdict(witness, primaryAlive, evidence + "; probe took " + (clock.nowNs() - asked) / 1_000_000 + " ms");
    }
}
