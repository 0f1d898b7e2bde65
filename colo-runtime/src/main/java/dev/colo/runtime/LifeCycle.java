package dev.colo.runtime;

import java.util.EnumSet;
import java.util.Map;

/**
 * The life of a component: NEW, STARTING, RUNNING, CLOSING, CLOSED, with a table of the legal
 * moves (as Ratis's LifeCycle has). Components check {@link #accepting()} before acting on an
 * event, so an event that arrives after close is refused by state, not by a rejected executor.
 */
public final class LifeCycle {
    public enum State { NEW, STARTING, RUNNING, CLOSING, CLOSED }

    private static final Map<State, EnumSet<State>> NEXT = Map.of(
            State.NEW, EnumSet.of(State.STARTING, State.CLOSING, State.CLOSED),
            State.STARTING, EnumSet.of(State.RUNNING, State.CLOSING),
            State.RUNNING, EnumSet.of(State.CLOSING),
            State.CLOSING, EnumSet.of(State.CLOSED),
            State.CLOSED, EnumSet.noneOf(State.class));

    private final String name;
    private volatile State state = State.NEW;

    public LifeCycle(String name) {
        this.name = name;
    }

    public State state() {
        return state;
    }

    /** The single gate for every change. */
    public synchronized void transition(State to) {
        if (!NEXT.get(state).contains(to)) {
            throw new IllegalStateException(name + ": illegal lifecycle transition " + state + " -> " + to);
        }
        state = to;
    }

    /** Moves to {@code to} only if legal now; returns whether it did. */
    public synchronized boolean tryTransition(State to) {
        if (!NEXT.get(state).contains(to)) {
            return false;
        }
        state = to;
        return true;
    }

    /** Starting or running: events are acted on. */
    public boolean accepting() {
        State s = state;
        return s == State.STARTING || s == State.RUNNING;
    }

    public boolean closed() {
        State s = state;
        return s == State.CLOSING || s == State.CLOSED;
    }

    /**
     * Runs {@code closer} exactly once, the first time close is asked for in any state; later calls
     * return at once.
     */
    public void closeOnce(Runnable closer) {
        synchronized (this) {
            if (state == State.CLOSING || state == State.CLOSED) {
                return;
            }
            state = State.CLOSING;
        }
        try {
            closer.run();
        } finally {
            synchronized (this) {
                state = State.CLOSED;
            }
        }
    }

    /** A task that runs only while this lifecycle accepts events (checked when it runs). */
    public Runnable guard(Runnable task) {
        return () -> {
            if (accepting()) {
                task.run();
            }
        };
    }

    @Override
    public String toString() {
        return name + ":" + state;
    }
}
