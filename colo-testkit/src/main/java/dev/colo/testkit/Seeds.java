package dev.colo.testkit;

import java.util.function.LongConsumer;

/**
 * Seeded property runs in plain JUnit: {@code -Dcolo.seed=N} replays one case; a failure names
 * its seed so it can be replayed.
 */
public final class Seeds {
    private Seeds() {}

    public static void forEach(int cases, long base, LongConsumer body) {
        String fixed = System.getProperty("colo.seed");
        if (fixed != null) {
            run(Long.parseLong(fixed), body);
            return;
        }
        for (int i = 0; i < cases; i++) {
            run(base + i, body);
        }
    }

    private static void run(long seed, LongConsumer body) {
        try {
            body.accept(seed);
        } catch (AssertionError | RuntimeException e) {
            throw new AssertionError("failed with seed=" + seed + " (replay with -Dcolo.seed=" + seed + "): " + e.getMessage(), e);
        }
    }
}
