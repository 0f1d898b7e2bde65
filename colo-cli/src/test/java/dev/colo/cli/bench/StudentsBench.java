package dev.colo.cli.bench;

import com.fasterxml.jackson.databind.JsonNode;
import dev.colo.cli.demo.LabControl;
import dev.colo.host.posix.Command;
import dev.colo.lab.AppGuest;
import dev.colo.lab.HostPairLab;
import dev.colo.lab.LabLan;
import dev.colo.lab.StudentsLoad;
import dev.colo.lab.TestGuest;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Locale;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * The students application (the web + SQL guest) side by side in one run: bare on a tap, through
 * colo protected (paired with its disk copied live), and through colo unprotected (after unpair).
 * Per setup: inserts/s with {@code WRITERS} writers posting the form back to back, the latency of
 * an insert and of the list page, and the data disk's speed inside the guest (4 KiB writes each
 * followed by fdatasync, and sequential MB/s). Also the pairing: disk copy rate and the PVM's
 * longest pause. Usage: StudentsBench [SECONDS=20] [WRITERS=4] [--out DIR]
 */
public final class StudentsBench {
    private static final Pattern DISK = Pattern.compile("ops=(\\d+) bytes=(\\d+) seconds=([0-9.]+)");

    record Row(String setup, long rowsBefore, double insertsPerSecond, double insertP50, double insertP99, double pageP50, double pageP99,
            long errors, double sync4kPerSecond, double seqMBs, long checkpoints) {}

    public static void main(String[] args) throws Exception {
        int seconds = args.length > 0 && !args[0].startsWith("--") ? Integer.parseInt(args[0]) : 20;
        int writers = args.length > 1 && !args[1].startsWith("--") ? Integer.parseInt(args[1]) : 4;
        Path out = Path.of("docs/bench");
        for (int i = 0; i < args.length - 1; i++) {
            if (args[i].equals("--out")) {
                out = Path.of(args[i + 1]);
            }
        }
        StringBuilder md = new StringBuilder();
        try (HostPairLab lab = new HostPairLab("colo-bench-st-", "bst", HostPairLab.Guest.APP)) {
            lab.deleteFilesOnClose();
            Row bare = bare(lab, seconds, writers, md);
            lab.startDaemons();
            long t0 = System.nanoTime();
            JsonNode paired = LabControl.call(lab.a, "pair", lab.domain);
            double pairSeconds = (System.nanoTime() - t0) / 1e9;
            awaitHealth(lab, Duration.ofSeconds(120));
            Matcher copied = Pattern.compile("event=disk_copied .*?done_bytes=(\\d+) total_bytes=(\\d+) rate_mib_s=([0-9.]+) eta_s=\\S+ "
                    + "elapsed_s=([0-9.]+)").matcher(lab.a.logText());
            String copy = copied.find() ? String.format(Locale.ROOT, "%.0f MiB of %.0f MiB copied in %s s (%s MiB/s: QEMU copies only what "
                    + "the image holds)", Long.parseLong(copied.group(1)) / 1048576.0, Long.parseLong(copied.group(2)) / 1048576.0,
                    copied.group(4), copied.group(3)) : "no disk_copied event";
            JsonNode first = paired.path("last_checkpoint");
            md.append(String.format(Locale.ROOT, "Pairing (`colo pair`, %.1f s to PROTECTED): %s; guest RAM is copied "
                    + "while the PVM runs, so the PVM is paused only by the first checkpoint: %.1f ms (%d pages, %s on the wire).%n%n", pairSeconds, copy, first.path("paused_ms").asDouble(),
                    first.path("dirty_pages").asLong(), first.path("wire_bytes").asLong() / 1048576 + " MiB"));
            int logMark = lab.a.logText().length();
            Row prot = measure(lab, "colo protected", seconds, writers);
            md.append(checkpointSummary(lab.a.logText().substring(logMark))).append("\n");
            say("colo protected, with the comparator's http_date rule (compare-http-date = true): daemons restarted, paired again");
            ProtectionBench.restartDaemonsAndPair(lab, "compare-http-date = true");
            awaitHealth(lab, Duration.ofSeconds(120));
            logMark = lab.a.logText().length();
            Row date = measure(lab, "colo protected, http_date", seconds, writers);
            md.append(checkpointSummary(lab.a.logText().substring(logMark)).replace("measuring protected", "measuring protected with http_date"))
                    .append("\n");
            LabControl.call(lab.a, "unpair", lab.domain);
            Row unprot = measure(lab, "colo unprotected", seconds, writers);
            md.append("| setup | rows before | inserts/s | vs bare | insert p50 ms | insert p99 ms | list page p50 ms | list page p99 ms | errors | "
                    + "4 KiB fdatasync writes/s | sequential MB/s | checkpoints |\n|---|---|---|---|---|---|---|---|---|---|---|---|\n");
            for (Row r : new Row[] {bare, prot, date, unprot}) {
                md.append(String.format(Locale.ROOT, "| %s | %d | %.1f | %.2f | %.1f | %.1f | %.1f | %.1f | %d | %.0f | %.1f | %d |%n", r.setup(),
                        r.rowsBefore(), r.insertsPerSecond(), r.insertsPerSecond() / bare.insertsPerSecond(), r.insertP50(), r.insertP99(),
                        r.pageP50(), r.pageP99(), r.errors(), r.sync4kPerSecond(), r.seqMBs(), r.checkpoints()));
            }
        }
        String text = "### The students application: bare vs colo (`bench/students " + seconds + " " + writers + "`, " + java.time.Instant.now()
                + ")\n\n" + md;
        Files.createDirectories(out);
        Files.writeString(out.resolve("results-students.md"), text);
        System.out.println(text);
    }

    private static Row bare(HostPairLab lab, int seconds, int writers, StringBuilder md) throws Exception {
        String name = lab.domain + "-bare";
        String tap = LabLan.newHostTap();
        Path disk = lab.qemuDir.resolve("bare-data.qcow2");
        try {
            AppGuest g = AppGuest.locate();
            Path xml = lab.qemuDir.resolve("bare.xml");
            Files.writeString(xml, g.domainXml(name, LabLan.GUEST_CIDR, TestGuest.tapNic(tap, LabLan.GUEST_MAC), g.copyDataDisk(disk), "qcow2"));
            long t0 = System.nanoTime();
            Command.run(Duration.ofSeconds(60), "virsh", "-c", "qemu:///system", "create", xml.toString()).orThrow();
            lab.lan.plug(tap);
            awaitHealth(lab, Duration.ofSeconds(120));
            md.append(String.format(Locale.ROOT, "Boot of the web + SQL guest (%d MiB, TCG) to its first `/health` answer: %.1f s.%n%n",
                    AppGuest.MEMORY_MIB, (System.nanoTime() - t0) / 1e9));
            return measure(lab, "bare (tap, no colo)", seconds, writers);
        } finally {
            Command.run(Duration.ofSeconds(30), "virsh", "-c", "qemu:///system", "destroy", name);
            lab.lan.unplug(tap);
            LabLan.deleteHostTap(tap);
        }
    }

    private static void awaitHealth(HostPairLab lab, Duration max) throws InterruptedException {
        long deadline = System.nanoTime() + max.toNanos();
        while (System.nanoTime() < deadline) {
            String h = lab.lan.httpGet("/health", Duration.ofSeconds(5));
            if (h != null && h.trim().equals("ok")) {
                return;
            }
            Thread.sleep(200);
        }
        throw new IllegalStateException("the students application did not answer /health within " + max.toSeconds() + " s");
    }

    private static Row measure(HostPairLab lab, String setup, int seconds, int writers) throws Exception {
        say(setup + ": " + writers + " writers for " + seconds + " s");
        long rows = StudentsLoad.get(lab.lan.ns(), LabLan.GUEST_IP, "/students.txt").text().lines().count();
        long ckptBefore = checkpoints(lab);
        StudentsLoad load = new StudentsLoad(lab.lan.ns(), LabLan.GUEST_IP, writers, 0);
        Thread.sleep(seconds * 1000L);
        StudentsLoad.Result r = load.stopAndCheck();
        long ckpts = checkpoints(lab) - ckptBefore;
        if (!r.promiseKept()) {
            say("  " + setup + ": " + r.summary() + " " + r.problems());
        }
        long[] ins = load.latenciesUs(StudentsLoad.Kind.INSERT);
        long[] page = load.latenciesUs(StudentsLoad.Kind.LIST_PAGE);
        // Once unmeasured: the first run allocates the scratch file's blocks, which the guest's
        // file system and a qcow2 image pay for once; every setup is measured on allocated blocks.
        disk(lab, "/bench/disk?mode=seq&mib=64");
        double[] sync = disk(lab, "/bench/disk?mode=sync4k&n=300");
        double[] seq = disk(lab, "/bench/disk?mode=seq&mib=64");
        Row row = new Row(setup, rows, r.inserted() / (double) seconds, pct(ins, 50), pct(ins, 99), pct(page, 50), pct(page, 99),
                r.failed() + r.broken(), sync[0] / sync[2], seq[1] / seq[2] / 1e6, ckpts);
        say(String.format(Locale.ROOT, "  %.1f inserts/s, insert p50 %.1f ms p99 %.1f ms, list page p50 %.1f ms p99 %.1f ms, "
                + "4 KiB fdatasync %.0f/s, sequential %.1f MB/s, %d checkpoints", row.insertsPerSecond(), row.insertP50(), row.insertP99(),
                row.pageP50(), row.pageP99(), row.sync4kPerSecond(), row.seqMBs(), ckpts));
        return row;
    }

    /** What the checkpoints of the protected run were: why, how long the PVM paused, how soon the SVM ran, the disk bytes shipped. */
    static String checkpointSummary(String log) {
        java.util.List<Double> paused = new java.util.ArrayList<>();
        java.util.List<Double> ready = new java.util.ArrayList<>();
        java.util.Map<String, Integer> reasons = new java.util.TreeMap<>();
        Matcher m = Pattern.compile("checkpoint committed .*? trigger=(\\S+) reason=(\\S+).*? paused_ms=([0-9.]+).*? svm_ready_ms=([0-9.]+)").matcher(log);
        while (m.find()) {
            reasons.merge(m.group(1) + "/" + m.group(2), 1, Integer::sum);
            paused.add(Double.parseDouble(m.group(3)));
            ready.add(Double.parseDouble(m.group(4)));
        }
        java.util.Collections.sort(paused);
        java.util.Collections.sort(ready);
        if (paused.isEmpty()) {
            return "No checkpoint committed while measuring protected.\n";
        }
        return String.format(Locale.ROOT, "Checkpoints while measuring protected: %d committed, PVM paused p50 %.1f ms (max %.1f), SVM ready p50 %.1f "
                + "ms (max %.1f); why: %s.%n", paused.size(), paused.get(paused.size() / 2), paused.get(paused.size() - 1),
                ready.get(ready.size() / 2), ready.get(ready.size() - 1), reasons);
    }

    private static long checkpoints(HostPairLab lab) {
        try {
            return LabControl.call(lab.a, "status", null).path("checkpoint").asLong();
        } catch (RuntimeException e) {
            return 0; // no daemon (bare)
        }
    }

    /** ops, bytes, seconds of one run of the guest's disk benchmark. */
    private static double[] disk(HostPairLab lab, String path) throws Exception {
        String text = StudentsLoad.get(lab.lan.ns(), LabLan.GUEST_IP, path).text();
        Matcher m = DISK.matcher(text);
        if (!m.find()) {
            throw new IllegalStateException("disk benchmark answered: " + text);
        }
        return new double[] {Double.parseDouble(m.group(1)), Double.parseDouble(m.group(2)), Double.parseDouble(m.group(3))};
    }

    private static double pct(long[] sortedUs, int p) {
        if (sortedUs.length == 0) {
            return -1;
        }
        return sortedUs[Math.min(sortedUs.length - 1, (int) Math.ceil(p / 100.0 * sortedUs.length) - 1)] / 1000.0;
    }

    private static void say(String s) {
        System.out.println("bench/students: " + s);
    }
}
