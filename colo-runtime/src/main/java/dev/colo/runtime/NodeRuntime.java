package dev.colo.runtime;

import java.util.concurrent.ExecutorService;

/**
 * The threads, clock and lifecycle of one node: the only place that owns executors. Lanes are
 * created by name on first use and live as long as the runtime; a component asks for its own
 * ({@code "control"}, {@code "path"}, {@code "ckpt-worker"} ...) and guards what it posts with its
 * own {@link LifeCycle}.
 */
public interface NodeRuntime extends AutoCloseable {
    Clock clock();

    default long nowNs() {
        return clock().nowNs();
    }

    /** The lane called {@code name}, created on first use. */
    Lane lane(String name);

    /**
     * An executor for data-parallel work inside one task (the page scan's stripes). In the
     * simulation it runs tasks on the caller, so a task stays one step.
     */
    ExecutorService parallel();

    /** Who this runtime belongs to (node and VM), for thread names and log lines. */
    NodeIdentity identity();

    /** Stops every lane; queued tasks are dropped. Idempotent. */
    @Override
    void close();
}
