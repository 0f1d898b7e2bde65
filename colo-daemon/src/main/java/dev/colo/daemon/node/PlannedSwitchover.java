package dev.colo.daemon.node;

import dev.colo.checkpoint.coordinator.Trigger;
import dev.colo.checkpoint.engine.PrimaryCheckpointEngine;
import dev.colo.checkpoint.link.proto.Failover;
import dev.colo.daemon.control.OperationException;
import dev.colo.daemon.failover.FailoverStateMachine.State;
import java.util.Map;
import java.util.concurrent.CompletableFuture;

/**
 * A planned switchover, the primary's side: one last checkpoint that leaves the PVM paused; once
 * the secondary runs that checkpoint's SVM, every output of the PVM has been released or can be
 * reproduced, and the secondary takes over. If the checkpoint fails, the PVM resumes and nothing
 * changed. Owns the operator's pending answer. Control lane.
 */
final class PlannedSwitchover {
    private final NodeContext ctx;
    private CompletableFuture<Map<String, Object>> pending;

    PlannedSwitchover(NodeContext ctx) {
        this.ctx = ctx;
    }

    CompletableFuture<Map<String, Object>> begin(PrimaryCheckpointEngine engine) throws OperationException {
        if (engine == null || ctx.failover().state() != State.PROTECTED) {
            throw new OperationException("a planned switchover starts on the primary in PROTECTED; this node is " + ctx.failover().state());
        }
        pending = new CompletableFuture<>();
        ctx.events().info("switchover", "planned switchover: last checkpoint, the PVM stays paused after it");
        engine.trigger(Trigger.SWITCHOVER, "operator asked for a planned switchover");
        return pending;
    }

    /** The last checkpoint was abandoned: the PVM runs on. */
    void failed(String reason) {
        if (pending != null && !pending.isDone()) {
            pending.completeExceptionally(new OperationException("switchover failed, the PVM runs on: " + reason));
        }
    }

    /** The SVM of checkpoint {@code seq} runs: we stop serving and the secondary takes over. */
    void handedOver(long seq) {
        ctx.failover().machine().onLocalVmLost("planned switchover at checkpoint " + seq, ctx.now());
        ctx.failover().mirror();
        if (ctx.link().connected()) {
            ctx.link().send(ctx.envelopes().builder()
                    .setFailover(Failover.newBuilder().setPlanned(true).setCheckpointSeq(seq).setReason("operator asked")).build());
        }
        ctx.events().info("handover", "switchover: the SVM of the last checkpoint takes over; the PVM stays paused", "ckpt", seq);
        if (pending != null) {
            pending.complete(ctx.status());
        }
    }
}
