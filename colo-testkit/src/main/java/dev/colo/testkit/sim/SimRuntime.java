package dev.colo.testkit.sim;

import dev.colo.runtime.Clock;
import dev.colo.runtime.Lane;
import dev.colo.runtime.NodeIdentity;
import dev.colo.runtime.NodeRuntime;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.AbstractExecutorService;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.TimeUnit;

/**
 * One simulated node's runtime: its lanes on the shared {@link SimWorld}. {@link #crash()} is
 * kill -9: every queued and future task of the node is dropped at once.
 */
public final class SimRuntime implements NodeRuntime {
    private final SimWorld world;
    private final NodeIdentity identity;
    private final Map<String, SimLane> lanes = new LinkedHashMap<>();
    private boolean alive = true;

    public SimRuntime(SimWorld world, NodeIdentity identity) {
        this.world = world;
        this.identity = identity;
    }

    public SimWorld world() {
        return world;
    }

    @Override
    public Clock clock() {
        return world;
    }

    @Override
    public NodeIdentity identity() {
        return identity;
    }

    @Override
    public Lane lane(String name) {
        return lanes.computeIfAbsent(name, n -> new SimLane(n, world, this));
    }

    boolean alive() {
        return alive;
    }

    Runnable wrap(Runnable task) {
        return () -> {
            if (alive) {
                task.run();
            }
        };
    }

    /** The node's process dies: nothing it queued runs any more. */
    public void crash() {
        alive = false;
    }

    public boolean crashed() {
        return !alive;
    }

    @Override
    public ExecutorService parallel() {
        return DIRECT;
    }

    @Override
    public void close() {
        alive = false;
    }

    /** Runs every task on the caller at once. */
    public static final ExecutorService DIRECT = new AbstractExecutorService() {
        @Override
        public void execute(Runnable command) {
            command.run();
        }

        @Override
        public void shutdown() {
        }

        @Override
        public List<Runnable> shutdownNow() {
            return List.of();
        }

        @Override
        public boolean isShutdown() {
            return false;
        }

        @Override
        public boolean isTerminated() {
            return false;
        }

        @Override
        public boolean awaitTermination(long timeout, TimeUnit unit) {
            return true;
        }
    };
}
