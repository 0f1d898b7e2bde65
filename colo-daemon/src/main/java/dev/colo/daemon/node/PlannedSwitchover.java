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
 * changed; the switchover is tried again (the retry is a full checkpoint into a fresh standby) up
 * to {@link #ATTEMPTS} times in all, since a refusal is usually passing: an SVM taking the
 * checkpoint in place that has not read its input in time under load. Owns the operator's pending
 * answer. Control lane.
 */
final class PlannedSwitchover {
    static final int ATTEMPTS = 3;

    private final NodeContext ctx;
    private CompletableFuture<Map<String, Object>> pending;
    private PrimaryCheckpointEngine engine;
    private int attempt;

    PlannedSwitchover(NodeContext ctx) {
        this.ctx = ctx;
    }

    CompletableFuture<Map<String, Object>> begin(PrimaryCheckpointEngine engine) throws OperationException {
        if (engine == null || ctx.failover().state() != State.PROTECTED) {
            throw new OperationException("a planned switchover starts on the primary in PROTECTED; this node is " + ctx.failover().state());
        }
        pending = new CompletableFuture<>();
        this.engine = engine;
        attempt = 1;
        ctx.events().info("switchover", "planned switchover: last checkpoint, the PVM stays paused after it", "attempt", attempt);
        engine.trigger(Trigger.SWITCHOVER, "operator asked for a planned switchover");
        return pending;
    }

    /** The last checkpoint was abandoned: the PVM runs on, and the switchover is tried again while attempts remain. */
    void failed(String reason) {
        if (pending == null || pending.isDone()) {
            return;
        }
        if (attempt < ATTEMPTS && ctx.failover().state() == State.PROTECTED && !engine.closed()) {
            attempt++;
            ctx.events().warn("switchover_retry", "planned switchover checkpoint failed, the PVM runs on; trying again with a full checkpoint",
                    "attempt", attempt, "reason", reason);
            engine.trigger(Trigger.SWITCHOVER, "planned switchover, attempt " + attempt);
            return;
        }
        pending.completeExceptionally(new OperationException("switchover failed after " + attempt + " attempt(s), the PVM runs on: " + reason));
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
