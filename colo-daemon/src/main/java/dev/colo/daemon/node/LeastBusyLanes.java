package dev.colo.daemon.node;

import dev.colo.runtime.Lane;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionStage;
import java.util.concurrent.atomic.AtomicIntegerArray;
import java.util.function.Supplier;

/**
 * Runs blocking checks on whichever of a few lanes has the fewest checks queued or running, so
 * that a check starts when it is asked for unless every lane is busy. Why: the secondary's
 * watch of the VM address and its failover probe both ping the VM (3 × 100 ms when it is
 * silent); on one lane a probe that began while a watch was pinging waited for it, and the
 * takeover took 600+ ms instead of 300.
 */
final class LeastBusyLanes {
    private final List<Lane> lanes;
    private final AtomicIntegerArray load;

    LeastBusyLanes(List<Lane> lanes) {
        if (lanes.isEmpty()) {
            throw new IllegalArgumentException("at least one lane");
        }
        this.lanes = List.copyOf(lanes);
        this.load = new AtomicIntegerArray(lanes.size());
    }

    <T> CompletionStage<T> run(Supplier<T> check) {
        int chosen = 0;
        for (int i = 1; i < lanes.size(); i++) {
            if (load.get(i) < load.get(chosen)) {
                chosen = i;
            }
        }
        int lane = chosen;
        load.incrementAndGet(lane);
        CompletableFuture<T> answer = new CompletableFuture<>();
        lanes.get(lane).execute(() -> {
            T result;
            try {
                result = check.get();
            } catch (RuntimeException e) {
                load.decrementAndGet(lane);
                answer.completeExceptionally(e);
                return;
            }
            // Free before completing: a caller's continuation may ask for the next check at once.
            load.decrementAndGet(lane);
            answer.complete(result);
        });
        return answer;
    }
}
