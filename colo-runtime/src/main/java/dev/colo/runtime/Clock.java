package dev.colo.runtime;

/** Time as components see it. Monotonic nanoseconds for every decision; wall time only for display. */
public interface Clock {
    long nowNs();

    /** Milliseconds since the epoch, for status ages and event timestamps shown to operators. */
    long wallMillis();

    Clock SYSTEM = new Clock() {
        @Override
        public long nowNs() {
            return System.nanoTime();
        }

        @Override
        public long wallMillis() {
            return System.currentTimeMillis();
        }
    };
}
