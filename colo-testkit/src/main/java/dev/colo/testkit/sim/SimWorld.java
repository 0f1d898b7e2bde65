package dev.colo.testkit.sim;

import dev.colo.runtime.Cancellable;
import dev.colo.runtime.Clock;
import java.util.PriorityQueue;
import java.util.Random;

/**
 * A virtual timeline for a whole simulated system: every lane of every simulated node, and every
 * simulated device, posts its events here; {@link #runUntil} executes them one at a time in time
 * order on the caller's thread. Same seed, same run: ties break by posting order, and all
 * randomness comes from {@link #random()}.
 *
 * <p>A task may {@link #charge} time for blocking work it models (a QMP call, a page scan): the
 * clock seen by that task moves on, what it posts happens later, and its lane stays busy for that
 * long, while the rest of the world is not held up.
 */
public final class SimWorld implements Clock {
    /** Virtual wall time starts at a fixed date, so logs and status ages are reproducible. */
    private static final long WALL_EPOCH_MS = 1_800_000_000_000L;

    private final long seed;
    private final Random random;
    private final PriorityQueue<Event> queue = new PriorityQueue<>();
    private long nowNs = 1_000_000_000L;
    private long localNs = -1;
    private long posted;
    private long executed;
    private RuntimeException failure;

    private static final class Event implements Comparable<Event> {
        final long atNs;
        final long order;
        final Runnable task;
        final SimLane lane;
        boolean cancelled;

        Event(long atNs, long order, Runnable task, SimLane lane) {
            this.atNs = atNs;
            this.order = order;
            this.task = task;
            this.lane = lane;
        }

        @Override
        public int compareTo(Event o) {
            int c = Long.compare(atNs, o.atNs);
            return c != 0 ? c : Long.compare(order, o.order);
        }
    }

    public SimWorld(long seed) {
        this.seed = seed;
        this.random = new Random(seed);
    }

    public long seed() {
        return seed;
    }

    /** The one source of randomness of a run. */
    public Random random() {
        return random;
    }

    /** Now, as the running task sees it (its start plus what it charged). */
    @Override
    public long nowNs() {
        return localNs >= 0 ? localNs : nowNs;
    }

    @Override
    public long wallMillis() {
        return WALL_EPOCH_MS + nowNs() / 1_000_000L;
    }

    /** The running task did {@code ns} of blocking work. */
    public void charge(long ns) {
        if (ns < 0) {
            throw new IllegalArgumentException("negative cost " + ns);
        }
        if (localNs >= 0) {
            localNs += ns;
        }
    }

    /** Posts {@code task} to run {@code delayNs} from now (on {@code lane}, or free-standing when null). */
    public Cancellable post(long delayNs, Runnable task, SimLane lane) {
        Event e = new Event(nowNs() + Math.max(0, delayNs), posted++, task, lane);
        queue.add(e);
        return () -> e.cancelled = true;
    }

    Event postEvent(long atNs, Runnable task, SimLane lane) {
        Event e = new Event(atNs, posted++, task, lane);
        queue.add(e);
        return e;
    }

    /** Runs events in time order until {@code endNs} or until nothing is left; returns the time reached. */
    public long runUntil(long endNs) {
        while (!queue.isEmpty() && queue.peek().atNs <= endNs) {
            Event e = queue.poll();
            if (e.cancelled) {
                continue;
            }
            if (e.lane != null && e.lane.busyUntilNs > e.atNs) {
                if (Boolean.getBoolean("colo.sim.debugBusy") && e.lane.busyUntilNs - e.atNs > 50_000_000L) {
                    System.out.println("busy lane " + e.lane.name() + " delays a task from " + e.atNs / 1_000_000 + " to " + e.lane.busyUntilNs / 1_000_000);
                }
                // The lane is still doing earlier (charged) work: this runs when it is free, in order.
                queue.add(new Event(e.lane.busyUntilNs, e.order, e.task, e.lane));
                continue;
            }
            if (e.lane != null && !e.lane.alive()) {
                continue;
            }
            nowNs = Math.max(nowNs, e.atNs);
            localNs = nowNs;
            try {
                e.task.run();
                executed++;
            } catch (RuntimeException ex) {
                if (failure == null) {
                    failure = ex;
                }
            } finally {
                if (e.lane != null) {
                    e.lane.busyUntilNs = localNs;
                }
                localNs = -1;
            }
            if (failure != null) {
                RuntimeException f = failure;
                failure = null;
                throw new IllegalStateException("a simulated task failed at t=" + nowNs / 1_000_000 + " ms (seed " + seed + "): " + f, f);
            }
        }
        nowNs = Math.max(nowNs, Math.min(endNs, queue.isEmpty() ? endNs : queue.peek().atNs));
        return nowNs;
    }

    /** Runs for {@code ns} of virtual time. */
    public long runFor(long ns) {
        return runUntil(nowNs + ns);
    }

    /** Runs until {@code done} holds (checked after every event) or {@code maxNs} passed; returns whether it held. */
    public boolean runUntil(java.util.function.BooleanSupplier done, long maxNs) {
        long end = nowNs + maxNs;
        while (!done.getAsBoolean()) {
            if (queue.isEmpty() || queue.peek().atNs > end) {
                nowNs = end;
                return done.getAsBoolean();
            }
            runUntil(queue.peek().atNs);
        }
        return true;
    }

    public long executed() {
        return executed;
    }

    public int pending() {
        return queue.size();
    }
}
