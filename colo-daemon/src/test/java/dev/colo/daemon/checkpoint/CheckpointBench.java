package dev.colo.daemon.checkpoint;

import dev.colo.checkpoint.coordinator.CheckpointRecord;
import dev.colo.checkpoint.coordinator.Trigger;
import dev.colo.lab.Lab;
import java.util.List;
import java.util.function.ToLongFunction;

/**
 * Checkpoint benchmark on real QEMU (bench/checkpoint): for each guest size, idle and then under
 * client load, N on-demand checkpoints through the mTLS link; every one is checked (the SVM answers
 * the next count) so only correct checkpoints count. Usage: CheckpointBench [SIZES_MIB=128,1024] [N=10]
 */
public final class CheckpointBench {
    public static void main(String[] args) throws Exception {
        String sizes = args.length > 0 ? args[0] : "128,1024";
        int n = args.length > 1 ? Integer.parseInt(args[1]) : 10;
        Lab.require();
        System.out.printf("checkpoint benchmark: %d checkpoints per row, lz4, mutual TLS on loopback%n", n);
        for (String s : sizes.split(",")) {
            int mib = Integer.parseInt(s.trim());
            try (QemuEngineRig rig = new QemuEngineRig("bench", mib)) {
                rig.start();
                for (String mode : new String[] {"idle", "load"}) {
                    if (mode.equals("load")) {
                        rig.startLoad();
                    }
                    int from = rig.records.size();
                    for (int i = 0; i < n; i++) {
                        CheckpointRecord r = rig.checkpoint(Trigger.ON_DEMAND, "benchmark");
                        if (!r.committed()) {
                            throw new IllegalStateException("checkpoint " + r.seq() + " failed: " + r.outcome());
                        }
                        rig.assertSvmIsACopyOfThePvm(); // only correct checkpoints count
                    }
                    rig.stopLoad();
                    List<CheckpointRecord> rows = rig.records.subList(from, rig.records.size()).stream().filter(CheckpointRecord::committed).toList();
                    System.out.printf("  %5d MiB %-4s %s%n", mib, mode, summary(rows));
                }
                CheckpointRecord first = rig.records.get(0);
                System.out.printf("  %5d MiB first full checkpoint: paused %.1f ms, %d pages, %d wire bytes%n", mib, first.pausedNs() / 1e6,
                        first.dirtyPages(), first.wireBytes());
            }
        }
    }

    static String summary(List<CheckpointRecord> rows) {
        List<CheckpointRecord> incremental = rows.stream().filter(r -> !r.full()).toList();
        return String.format("paused median %.1f ms p99 %.1f ms | SVM ready median %.1f ms | dirty pages %.0f | wire %.0f KB",
                pct(incremental, CheckpointRecord::pausedNs, 50) / 1e6, pct(incremental, CheckpointRecord::pausedNs, 99) / 1e6,
                pct(incremental, CheckpointRecord::svmReadyNs, 50) / 1e6,
                incremental.stream().mapToLong(CheckpointRecord::dirtyPages).average().orElse(0),
                incremental.stream().mapToLong(CheckpointRecord::wireBytes).average().orElse(0) / 1024);
    }

    static long pct(List<CheckpointRecord> rows, ToLongFunction<CheckpointRecord> f, double p) {
        long[] v = rows.stream().mapToLong(f).sorted().toArray();
        if (v.length == 0) {
            return 0;
        }
        int idx = (int) Math.ceil(p / 100.0 * v.length) - 1;
        return v[Math.max(0, Math.min(v.length - 1, idx))];
    }
}
