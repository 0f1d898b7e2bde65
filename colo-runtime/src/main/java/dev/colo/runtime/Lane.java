package dev.colo.runtime;

import java.util.concurrent.Callable;
import java.util.concurrent.Executor;

/**
 * A serial execution context: tasks run one at a time, in the order they were posted, never
 * concurrently with each other. State owned by a component lives on exactly one lane, so it needs
 * no locks. In production a lane is a thread; in the simulation it is a queue on a virtual clock.
 */
public interface Lane extends Executor {
    String name();

    /** Runs {@code task} later on this lane. After the runtime closed, tasks are dropped. */
    @Override
    void execute(Runnable task);

    /** Runs {@code task} on this lane after {@code delayNs}. */
    Cancellable schedule(long delayNs, Runnable task);

    /** Runs {@code task} every {@code periodNs}, first after {@code initialNs}, until cancelled. */
    Cancellable every(long initialNs, long periodNs, Runnable task);

    /**
     * Runs {@code c} on this lane and returns its result to the caller, which waits (in the
     * simulation it runs at once, on the caller's timeline). Meant for short queries and hand-offs,
     * never from the lane itself.
     */
    <T> T call(Callable<T> c) throws Exception;

    /** True when the current thread is this lane's. */
    boolean inLane();
}
