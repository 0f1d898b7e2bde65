package dev.colo.testkit;

import java.time.Duration;

/** A nanosecond clock that moves only when a test says so. */
public final class ManualClock {
    private long nowNs;

    public ManualClock() {
        this(1_000_000_000L);
    }

    public ManualClock(long startNs) {
        this.nowNs = startNs;
    }

    public long nowNs() {
        return nowNs;
    }

    public long advance(Duration d) {
        return advanceNs(d.toNanos());
    }

    public long advanceMs(long ms) {
        return advanceNs(ms * 1_000_000L);
    }

    public long advanceNs(long ns) {
        if (ns < 0) {
            throw new IllegalArgumentException("time never goes back: " + ns);
        }
        nowNs += ns;
        return nowNs;
    }
}
