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
    private long lastPostedNs;

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
        // FIFO even when an earlier task was posted with a later time by a charged caller.
        long at = Math.max(world.nowNs(), lastPostedNs);
        lastPostedNs = at;
        world.postEvent(at, owner.wrap(task), this);
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

    /** Runs at once on the caller's timeline: the simulation has one thread, so this is a legal interleaving. */
    @Override
    public <T> T call(Callable<T> c) throws Exception {
        if (!alive()) {
            throw new IllegalStateException("lane " + name() + " is dead (its node crashed)");
        }
        return c.call();
    }

    @Override
    public boolean inLane() {
        return false;
    }
}
