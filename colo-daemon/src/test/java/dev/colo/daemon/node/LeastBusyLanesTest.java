package dev.colo.daemon.node;

import static org.assertj.core.api.Assertions.assertThat;

import dev.colo.runtime.NodeIdentity;
import dev.colo.runtime.ThreadedRuntime;
import java.util.List;
import java.util.concurrent.CompletionStage;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;

class LeastBusyLanesTest {

    @Test
    void aCheckAskedWhileAnotherBlocksStartsAtOnceOnTheIdleLane() throws Exception {
        ThreadedRuntime runtime = new ThreadedRuntime(new NodeIdentity("host-b", "web1", "secondary"));
        try {
            LeastBusyLanes lanes = new LeastBusyLanes(List.of(runtime.lane("probe-vm-1"), runtime.lane("probe-vm-2")));
            CountDownLatch release = new CountDownLatch(1);
            CountDownLatch secondStarted = new CountDownLatch(1);
            // The watch's ping of a silent VM: blocks until released.
            CompletionStage<String> watch = lanes.run(() -> {
                await(release);
                return Thread.currentThread().getName();
            });
            // The probe's ping, asked meanwhile: must not wait for the watch.
            CompletionStage<String> probe = lanes.run(() -> {
                secondStarted.countDown();
                return Thread.currentThread().getName();
            });
            assertThat(secondStarted.await(10, TimeUnit.SECONDS)).as("the second check ran while the first still blocked").isTrue();
            String probeThread = probe.toCompletableFuture().get(10, TimeUnit.SECONDS);
            release.countDown();
            String watchThread = watch.toCompletableFuture().get(10, TimeUnit.SECONDS);
            assertThat(probeThread).isNotEqualTo(watchThread);

            // Both free again: the next check goes to the first lane, and a failing check frees its lane too.
            CompletionStage<String> failing = lanes.run(() -> {
                throw new IllegalStateException("no route");
            });
            assertThat(failing.toCompletableFuture()).failsWithin(10, TimeUnit.SECONDS);
            assertThat(lanes.run(() -> Thread.currentThread().getName()).toCompletableFuture().get(10, TimeUnit.SECONDS))
                    .isEqualTo(watchThread);
        } finally {
            runtime.close();
        }
    }

    private static void await(CountDownLatch latch) {
        try {
            latch.await(30, TimeUnit.SECONDS);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }
}
