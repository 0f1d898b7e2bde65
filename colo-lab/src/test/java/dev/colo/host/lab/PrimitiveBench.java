package dev.colo.host.lab;

import dev.colo.host.libvirt.LibvirtHypervisor;
import dev.colo.lab.Lab;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.function.ToLongFunction;

/**
 * Benchmark of the checkpoint primitive on real QEMU (bench/primitive): PVM paused time (stop to
 * cont, including a full RAM copy) and the time from PVM resume to a running standby. Every round
 * also checks that the standby continues the counter, so a fast but wrong round cannot count.
 */
public final class PrimitiveBench {
    private PrimitiveBench() {}

    public static void main(String[] args) {
        int rounds = args.length > 0 ? Integer.parseInt(args[0]) : 20;
        int memoryMiB = args.length > 1 ? Integer.parseInt(args[1]) : 128;
        Lab.require();
        List<PrimitiveRig.Round> results = new ArrayList<>();
        try (LibvirtHypervisor hv = new LibvirtHypervisor("qemu:///system");
                PrimitiveRig rig = new PrimitiveRig(hv, "bench", memoryMiB)) {
            int count = rig.lanA().awaitCounter(Duration.ofSeconds(120));
            for (int i = 0; i < rounds; i++) {
                rig.prepareStandby();
                PrimitiveRig.Round r = rig.checkpoint();
                int next = rig.lanB().awaitCounter(Duration.ofSeconds(30));
                if (next != count + 1) {
                    throw new IllegalStateException("round " + (i + 1) + ": standby answered " + next + ", expected " + (count + 1));
                }
                count = rig.lanA().counter(Duration.ofSeconds(10));
                rig.retireStandby();
                if (i > 0) { // the first round warms the JIT and the monitor connection
                    results.add(r);
                }
            }
        }
        System.out.printf("primitive benchmark: %d MiB guest, %d measured rounds (1 warm-up), counter continuous in all%n",
                memoryMiB, results.size());
        row("PVM paused (stop..cont)", results, PrimitiveRig.Round::pausedNs);
        row("  of which RAM copy", results, PrimitiveRig.Round::copyNs);
        row("  of which device-state save", results, PrimitiveRig.Round::saveNs);
        row("standby running after PVM resumed", results, PrimitiveRig.Round::standbyReadyNs);
        row("  of which device-state load", results, PrimitiveRig.Round::loadNs);
        System.out.printf("device state: %d bytes%n", results.get(0).deviceBytes());
    }

    private static void row(String what, List<PrimitiveRig.Round> rs, ToLongFunction<PrimitiveRig.Round> f) {
        long[] v = rs.stream().mapToLong(f).sorted().toArray();
        System.out.printf("%-36s median %6.1f ms   p99 %6.1f ms   min %6.1f ms   max %6.1f ms%n", what,
                pct(v, 50) / 1e6, pct(v, 99) / 1e6, v[0] / 1e6, v[v.length - 1] / 1e6);
    }

    static long pct(long[] sorted, double p) {
        int idx = (int) Math.ceil(p / 100.0 * sorted.length) - 1;
        return sorted[Math.max(0, Math.min(sorted.length - 1, idx))];
    }
}
