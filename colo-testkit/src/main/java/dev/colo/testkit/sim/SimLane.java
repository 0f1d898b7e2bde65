package dev.colo.testkit.sim;

import dev.colo.runtime.Cancellable;
import dev.colo.runtime.Lane;
import java.util.concurrent.Callable;

/** A lane on the simulated timeline: FIFO, one task at a time, dead once its node crashed. */
public final class SimLane implements Lane {
    private final String name;
    private final SimWorld world;
    private final SimRuntime owner;
    long busyUntilNs;
    private long posted;
    /** Tasks posted with {@link #execute} and not run yet, by virtual time and posting order. */
    private final java.util.PriorityQueue<Task> pending = new java.util.PriorityQueue<>();

    private static final class Task implements Comparable<Task> {
        final long atNs;
        final long order;
        final Runnable run;
        boolean done;

        Task(long atNs, long order, Runnable run) {
            this.atNs = atNs;
            this.order = order;
            this.run = run;
        }

        @Override
        public int compareTo(Task o) {
            int c = Long.compare(atNs, o.atNs);
            return c != 0 ? c : Long.compare(order, o.order);
        }

        void runOnce() {
            if (!done) {
                done = true;
                run.run();
            }
        }
    }

    SimLane(String name, SimWorld world, SimRuntime owner) {
        this.name = name;
        this.world = world;
        this.owner = owner;
    }

    @Override
    public String name() {
        return owner.identity().node() + "/" + name;
    }

    boolean alive() {
        return owner.alive();
    }

    @Override
    public void execute(Runnable task) {
        if (!alive()) {
            return;
        }
        // Ordered by virtual time, then by posting order: a task posted by a caller that charged
        // time (it "finished" later) runs after tasks posted at earlier virtual times.
        Task t = new Task(world.nowNs(), posted++, owner.wrap(task));
        pending.add(t);
        world.postEvent(t.atNs, () -> {
            pending.remove(t);
            t.runOnce();
        }, this);
    }

    @Override
    public Cancellable schedule(long delayNs, Runnable task) {
        if (!alive()) {
            return Cancellable.NONE;
        }
        return world.post(delayNs, owner.wrap(task), this);
    }

    @Override
    public Cancellable every(long initialNs, long periodNs, Runnable task) {
        boolean[] cancelled = new boolean[1];
        Runnable[] tick = new Runnable[1];
        tick[0] = () -> {
            if (cancelled[0]) {
                return;
            }
            task.run();
            if (!cancelled[0]) {
                world.post(periodNs, owner.wrap(tick[0]), this);
            }
        };
        world.post(initialNs, owner.wrap(tick[0]), this);
        return () -> cancelled[0] = true;
    }

    /**
     * Runs at once on the caller's timeline, after what was already queued on this lane (as a
     * real lane would: the call waits behind them); the simulation has one thread, so this is a legal
     * interleaving.
     */
    @Override
    public <T> T call(Callable<T> c) throws Exception {
        if (!alive()) {
            throw new IllegalStateException("lane " + name() + " is dead (its node crashed)");
        }
        long now = world.nowNs();
        while (!pending.isEmpty() && pending.peek().atNs <= now) {
            pending.poll().runOnce();
        }
        return c.call();
    }

    @Override
    public boolean inLane() {
        return false;
    }
}
