package dev.colo.runtime;

import java.util.LinkedHashMap;
import java.util.Map;
import java.util.concurrent.Callable;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.RejectedExecutionException;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.ScheduledFuture;
import java.util.concurrent.ThreadFactory;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The production runtime: each lane is one daemon thread named after the node and VM
 * ({@code colo[host-a/web1] control}); lanes that must be a Netty event loop (the data path) are
 * adopted from the caller. Every task runs with the node's identity in the MDC.
 */
public final class ThreadedRuntime implements NodeRuntime {
    private static final Logger log = LoggerFactory.getLogger(ThreadedRuntime.class);
    private static final long CALL_TIMEOUT_S = 30;

    private final NodeIdentity identity;
    private final LifeCycle life;
    private final Map<String, ThreadLane> lanes = new LinkedHashMap<>();
    private final ExecutorService parallel;

    public ThreadedRuntime(NodeIdentity identity) {
        this.identity = identity;
        this.life = new LifeCycle("runtime " + identity.node());
        this.life.transition(LifeCycle.State.STARTING);
        this.life.transition(LifeCycle.State.RUNNING);
        this.parallel = Executors.newFixedThreadPool(Runtime.getRuntime().availableProcessors(), threads("parallel"));
    }

    @Override
    public Clock clock() {
        return Clock.SYSTEM;
    }

    @Override
    public NodeIdentity identity() {
        return identity;
    }

    /** Threads named after the node, with its identity in their MDC. */
    public ThreadFactory threads(String lane) {
        return r -> {
            Thread t = new Thread(() -> {
                identity.toMdc();
                r.run();
            }, identity.threadName(lane));
            t.setDaemon(true);
            return t;
        };
    }

    @Override
    public synchronized Lane lane(String name) {
        if (life.closed()) {
            throw new IllegalStateException("runtime of " + identity.node() + " is closed; no lane " + name);
        }
        return lanes.computeIfAbsent(name, n -> new ThreadLane(n, Executors.newSingleThreadScheduledExecutor(threads(n)), true));
    }

    /**
     * Makes {@code executor} (e.g. a Netty event loop whose thread this runtime's factory made) the
     * lane called {@code name}. The runtime shuts it down on close only if {@code owned}.
     */
    public synchronized Lane adopt(String name, ScheduledExecutorService executor, boolean owned) {
        ThreadLane l = new ThreadLane(name, executor, owned);
        lanes.put(name, l);
        return l;
    }

    @Override
    public ExecutorService parallel() {
        return parallel;
    }

    @Override
    public void close() {
        life.closeOnce(() -> {
            for (ThreadLane l : lanes.values()) {
                if (l.owned) {
                    l.executor.shutdownNow();
                }
            }
            parallel.shutdownNow();
        });
    }

    private final class ThreadLane implements Lane {
        private final String name;
        private final ScheduledExecutorService executor;
        private final boolean owned;
        private volatile Thread thread;

        ThreadLane(String name, ScheduledExecutorService executor, boolean owned) {
            this.name = name;
            this.executor = executor;
            this.owned = owned;
        }

        @Override
        public String name() {
            return name;
        }

        private Runnable wrap(Runnable task) {
            return () -> {
                thread = Thread.currentThread();
                if (!life.accepting()) {
                    return;
                }
                org.slf4j.MDC.put("role", identity.role());
                org.slf4j.MDC.put("term", Long.toString(identity.term()));
                try {
                    task.run();
                } catch (RuntimeException e) {
                    // One failed task must not take the lane with it; the failure is the owner's to report.
                    log.atError().addKeyValue("lane", name).addKeyValue("reason", e.toString()).setCause(e).log("task failed on a lane");
                }
            };
        }

        @Override
        public void execute(Runnable task) {
            if (!life.accepting()) {
                return;
            }
            try {
                executor.execute(wrap(task));
            } catch (RejectedExecutionException e) {
                // Only possible while the runtime closes: the state check above raced with close.
                if (!life.closed()) {
                    throw e;
                }
            }
        }

        @Override
        public Cancellable schedule(long delayNs, Runnable task) {
            if (!life.accepting()) {
                return Cancellable.NONE;
            }
            try {
                ScheduledFuture<?> f = executor.schedule(wrap(task), delayNs, TimeUnit.NANOSECONDS);
                return () -> f.cancel(false);
            } catch (RejectedExecutionException e) {
                if (!life.closed()) {
                    throw e;
                }
                return Cancellable.NONE;
            }
        }

        @Override
        public Cancellable every(long initialNs, long periodNs, Runnable task) {
            if (!life.accepting()) {
                return Cancellable.NONE;
            }
            try {
                ScheduledFuture<?> f = executor.scheduleAtFixedRate(wrap(task), initialNs, periodNs, TimeUnit.NANOSECONDS);
                return () -> f.cancel(false);
            } catch (RejectedExecutionException e) {
                if (!life.closed()) {
                    throw e;
                }
                return Cancellable.NONE;
            }
        }

        @Override
        public <T> T call(Callable<T> c) throws Exception {
            if (inLane()) {
                return c.call();
            }
            if (!life.accepting()) {
                throw new IllegalStateException("lane " + name + " of " + identity.node() + " is closed");
            }
            try {
                return executor.submit(c).get(CALL_TIMEOUT_S, TimeUnit.SECONDS);
            } catch (ExecutionException e) {
                throw e.getCause() instanceof Exception x ? x : e;
            } catch (TimeoutException e) {
                throw new IllegalStateException("lane " + name + " of " + identity.node() + " did not answer within " + CALL_TIMEOUT_S + " s", e);
            }
        }

        @Override
        public boolean inLane() {
            return Thread.currentThread() == thread;
        }
    }
}
