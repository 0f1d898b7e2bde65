package dev.colo.daemon.checkpoint;

import dev.colo.checkpoint.coordinator.CheckpointRecord;
import dev.colo.checkpoint.coordinator.Trigger;
import dev.colo.lab.Lab;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;

/**
 * Sustained checkpoint rate on real QEMU (bench/checkpoint-rate), the SVM taking checkpoints in
 * place against the fresh-standby fallback, side by side in one run: back-to-back checkpoints under
 * client load, as a service whose every answer diverges would ask for them. Then a soak: in-place
 * checkpoints, each checked (the SVM answers the next count, its own count since the last
 * checkpoint undone). Usage: CheckpointRateBench [MIB=128] [N_IN_PLACE=300] [N_FRESH=20] [SOAK=1000]
 */
public final class CheckpointRateBench {
    private static double pct(List<Double> sorted, int p) {
        return sorted.isEmpty() ? -1 : sorted.get(Math.min(sorted.size() - 1, (int) Math.ceil(p / 100.0 * sorted.size()) - 1));
    }

    public static void main(String[] args) throws Exception {
        int mib = args.length > 0 ? Integer.parseInt(args[0]) : 128;
        int nInPlace = args.length > 1 ? Integer.parseInt(args[1]) : 300;
        int nFresh = args.length > 2 ? Integer.parseInt(args[2]) : 20;
        int soak = args.length > 3 ? Integer.parseInt(args[3]) : 1000;
        Lab.require();
        System.out.printf("checkpoint rate: %d MiB guest under client load, back-to-back on-demand checkpoints, lz4, mutual TLS on loopback%n",
                mib);
        for (String row : new String[] {"in place", "in place, QMP through libvirtd", "fresh standby"}) {
            boolean reuse = !row.equals("fresh standby");
            boolean direct = !row.contains("libvirtd");
            try (QemuEngineRig rig = new QemuEngineRig(reuse ? direct ? "rate-ip" : "rate-il" : "rate-fs", mib, reuse, direct)) {
                rig.start();
                CheckpointRecord pairing = rig.records().get(0); // the first checkpoint: the whole RAM and the whole stream
                rig.startLoad();
                int n = reuse ? nInPlace : nFresh;
                List<CheckpointRecord> rows = new ArrayList<>();
                long t0 = System.nanoTime();
                for (int i = 0; i < n; i++) {
                    CheckpointRecord r = rig.checkpoint(Trigger.ON_DEMAND, "rate benchmark");
                    if (!r.committed()) {
                        throw new IllegalStateException("checkpoint " + r.seq() + " failed: " + r.outcome());
                    }
                    rows.add(r);
                }
                double seconds = (System.nanoTime() - t0) / 1e9;
                rig.stopLoad();
                rig.assertSvmIsACopyOfThePvm(); // the last of them made a correct SVM
                List<Double> latency = new ArrayList<>(rig.clientLatencySeconds);
                Collections.sort(latency);
                System.out.printf("  %-13s %4d checkpoints in %5.1f s = %5.1f/s | paused p50 %.1f p99 %.1f ms | SVM ready p50 %.1f p99 %.1f ms"
                        + " | device state %d B%n", row, n, seconds, n / seconds,
                        CheckpointBench.pct(rows, CheckpointRecord::pausedNs, 50) / 1e6, CheckpointBench.pct(rows, CheckpointRecord::pausedNs, 99) / 1e6,
                        CheckpointBench.pct(rows, CheckpointRecord::svmReadyNs, 50) / 1e6,
                        CheckpointBench.pct(rows, CheckpointRecord::svmReadyNs, 99) / 1e6, rows.get(rows.size() - 1).deviceStateBytes());
                System.out.printf("  %-13s client GET /index.html straight to the PVM (its pauses, not the proxy's hold): %d answered, p50 %.1f p99 %.1f ms%n",
                        "", latency.size(), pct(latency, 50) * 1e3, pct(latency, 99) * 1e3);
                System.out.printf("  %-13s pairing (first) checkpoint paused the PVM %.1f ms (%d dirty pages) vs ordinary p50 %.1f ms%n", "",
                        pairing.pausedNs() / 1e6, pairing.dirtyPages(), CheckpointBench.pct(rows, CheckpointRecord::pausedNs, 50) / 1e6);
                System.out.printf("  %-13s secondary memory for this VM: %d QEMU process(es), RSS %d MiB (guest RAM shared with the daemon's mapping)"
                        + " + shadow %d MiB%n", "", rig.secondaryDomains(), rig.secondaryQemuRssBytes() >> 20, mib);
                if (reuse && direct && soak > 0) {
                    long s0 = System.nanoTime();
                    // One echo connection to the PVM lives through the whole soak: its TCP state is paused and resumed each time.
                    try (java.net.Socket echo = rig.lanA.ns().call(() -> {
                        java.net.Socket e = new java.net.Socket();
                        e.connect(new java.net.InetSocketAddress(dev.colo.lab.LabLan.GUEST_IP, 7), 10_000);
                        e.setSoTimeout(30_000);
                        return e;
                    })) {
                        java.io.BufferedReader in = new java.io.BufferedReader(new java.io.InputStreamReader(echo.getInputStream(),
                                java.nio.charset.StandardCharsets.US_ASCII));
                        java.util.Random rnd = new java.util.Random(soak);
                        for (int i = 0; i < soak; i++) {
                            CheckpointRecord r = rig.checkpoint(Trigger.ON_DEMAND, "soak");
                            if (!r.committed()) {
                                throw new IllegalStateException("soak checkpoint " + r.seq() + " failed: " + r.outcome());
                            }
                            rig.assertSvmIsACopyOfThePvm();
                            String line = Long.toHexString(rnd.nextLong());
                            echo.getOutputStream().write((line + "\n").getBytes(java.nio.charset.StandardCharsets.US_ASCII));
                            if (!line.equals(in.readLine())) {
                                throw new IllegalStateException("the echo stream broke after soak checkpoint " + r.seq());
                            }
                        }
                    }
                    System.out.printf("  soak: %d in-place checkpoints, each followed by a count from the SVM and the PVM and a line on one "
                            + "long echo connection: all continuous (%.0f s)%n", soak, (System.nanoTime() - s0) / 1e9);
                }
            }
        }
    }
}
