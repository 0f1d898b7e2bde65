package dev.colo.cli.bench;

import dev.colo.cli.demo.LabControl;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.colo.lab.HostPairLab;
import dev.colo.host.posix.NetNamespace;
import dev.colo.lab.Lab;
import dev.colo.lab.LabLan;
import dev.colo.host.posix.Command;
import dev.colo.lab.TestGuest;
import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.io.OutputStream;
import java.net.DatagramPacket;
import java.net.DatagramSocket;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.knowm.xchart.BitmapEncoder;
import org.knowm.xchart.CategoryChart;
import org.knowm.xchart.CategoryChartBuilder;
import org.knowm.xchart.XYChart;
import org.knowm.xchart.XYChartBuilder;

/**
 * What protection costs and how application-agnostic it is, measured side by side in one run on
 * this machine (bench/run): HTTP throughput and latency for the same guest bare on a tap, through
 * colo unprotected and protected; checkpoint pause and bytes against the guest's dirty rate;
 * checkpoints per 1000 requests and client-visible errors across a failover for several kinds of
 * service; and the failover gap over repeated demo runs. Writes a Markdown table file and PNG
 * plots into the output directory.
 */
public final class ProtectionBench {
    private static final ObjectMapper JSON = new ObjectMapper();
    private static final int[] CONCURRENCY = {1, 4, 16};

    private final boolean quick;
    private final Path out;
    private final StringBuilder md = new StringBuilder();
    private HostPairLab lab;

    private ProtectionBench(boolean quick, Path out) {
        this.quick = quick;
        this.out = out;
    }

    public static void main(String[] args) throws Exception {
        boolean quick = true;
        Path out = Path.of("docs/bench");
        for (int i = 0; i < args.length; i++) {
            switch (args[i]) {
                case "--quick" -> quick = true;
                case "--full" -> quick = false;
                case "--out" -> out = Path.of(args[++i]);
                default -> {
                    System.err.println("usage: ProtectionBench [--quick|--full] [--out DIR]");
                    System.exit(2);
                }
            }
        }
        Files.createDirectories(out);
        new ProtectionBench(quick, out).run();
        System.exit(0);
    }

    private void say(String s) {
        System.err.println("bench: " + s);
    }

    private void run() throws Exception {
        Lab.require();
        long t0 = System.nanoTime();
        md.append("Machine: ").append(Runtime.getRuntime().availableProcessors()).append(" cores, ")
                .append(Command.run(Duration.ofSeconds(5), "uname", "-r").out().trim()).append(", guests under TCG, mode ")
                .append(quick ? "quick" : "full").append(".\n\n");
        try {
            lab = new HostPairLab("colo-bench-", "bench");
            overhead();
            dirtyRate();
            applicationMatrix();
        } finally {
            if (lab != null) {
                lab.close();
            }
        }
        failoverGaps();
        md.append("\nTotal bench time: ").append((System.nanoTime() - t0) / 1_000_000_000).append(" s.\n");
        Files.writeString(out.resolve("results-" + (quick ? "quick" : "full") + ".md"), md.toString());
        System.out.println(md);
    }

    // ------------------------------------------------------------------ 1. overhead

    record Wrk(double rps, double p50Ms, double p99Ms) {}

    private Wrk wrk(int connections, int seconds, String path) {
        Command.Result r = lab.lan.ns().exec(Duration.ofSeconds(seconds + 30), "wrk", "-t1", "-c" + connections, "-d" + seconds + "s",
                "--timeout", "10s", "--latency", "http://" + LabLan.GUEST_IP + path);
        String o = r.out();
        return new Wrk(number(o, "Requests/sec:\\s+([0-9.]+)"), millis(o, "50%\\s+([0-9.]+)(us|ms|s)"), millis(o, "99%\\s+([0-9.]+)(us|ms|s)"));
    }

    private static double number(String text, String regex) {
        Matcher m = Pattern.compile(regex).matcher(text);
        return m.find() ? Double.parseDouble(m.group(1)) : Double.NaN;
    }

    private static double millis(String text, String regex) {
        Matcher m = Pattern.compile(regex).matcher(text);
        if (!m.find()) {
            return Double.NaN;
        }
        double v = Double.parseDouble(m.group(1));
        return switch (m.group(2)) {
            case "us" -> v / 1000;
            case "s" -> v * 1000;
            default -> v;
        };
    }

    /** Static pages carry busybox's Date header (they diverge once a second); the CGI peek is deterministic. */
    private static final String[] PATHS = {"/index.html", "/cgi-bin/counter?peek"};

    private void overhead() throws Exception {
        int seconds = quick ? 5 : 20;
        Map<String, Wrk[]> rows = new LinkedHashMap<>();

        say("overhead: the guest bare on a tap in the LAN bridge");
        String bare = lab.domain + "-bare";
        String tap = LabLan.newHostTap();
        try {
            String xml = TestGuest.locate().domainXml(bare, 128, LabLan.GUEST_CIDR, TestGuest.tapNic(tap, LabLan.GUEST_MAC), false, null);
            Path f = Files.createTempFile("bare", ".xml");
            Files.writeString(f, xml);
            Command.run(Duration.ofSeconds(60), "virsh", "-c", "qemu:///system", "create", f.toString()).orThrow();
            lab.lan.plug(tap);
            lab.lan.awaitCounter(Duration.ofSeconds(120));
            rows.put("bare (tap, no colo)", measure(seconds));
        } finally {
            Command.run(Duration.ofSeconds(30), "virsh", "-c", "qemu:///system", "destroy", bare);
            lab.lan.unplug(tap);
            LabLan.deleteHostTap(tap);
        }

        say("overhead: through colo, protected");
        lab.startDaemons();
        LabControl.call(lab.a, "pair", lab.domain);
        lab.lan.awaitCounter(Duration.ofSeconds(120));
        long epochBefore = LabControl.call(lab.a, "status", null).path("checkpoint").asLong();
        rows.put("colo protected", measure(seconds));
        long protectedCheckpoints = LabControl.call(lab.a, "status", null).path("checkpoint").asLong() - epochBefore;

        say("overhead: through colo, protected, with the comparator's http_date rule (compare-http-date = true)");
        restartDaemonsAndPair(lab, "compare-http-date = true");
        lab.lan.awaitCounter(Duration.ofSeconds(120));
        long dateBefore = LabControl.call(lab.a, "status", null).path("checkpoint").asLong();
        rows.put("colo protected, http_date", measure(seconds));
        long dateCheckpoints = LabControl.call(lab.a, "status", null).path("checkpoint").asLong() - dateBefore;

        say("overhead: through colo, unprotected (unpaired, proxy passes frames through)");
        LabControl.call(lab.a, "unpair", lab.domain);
        rows.put("colo unprotected", measure(seconds));

        md.append("### Overhead: HTTP (`wrk -t1 -cN -d").append(seconds).append("s --latency`)\n\n");
        md.append("| path | setup | conns | requests/s | p50 ms | p99 ms | req/s vs bare |\n|---|---|---|---|---|---|---|\n");
        Wrk[] base = rows.get("bare (tap, no colo)");
        for (int pi = 0; pi < PATHS.length; pi++) {
            for (Map.Entry<String, Wrk[]> e : rows.entrySet()) {
                for (int i = 0; i < CONCURRENCY.length; i++) {
                    int k = pi * CONCURRENCY.length + i;
                    Wrk w = e.getValue()[k];
                    md.append(String.format(Locale.ROOT, "| `%s` | %s | %d | %.0f | %.1f | %.1f | %.2f |%n", PATHS[pi], e.getKey(), CONCURRENCY[i],
                            w.rps(), w.p50Ms(), w.p99Ms(), w.rps() / base[k].rps()));
                }
            }
        }
        md.append("\nCheckpoints while measuring protected: ").append(protectedCheckpoints).append("; protected with http_date: ")
                .append(dateCheckpoints).append(".\n\n");
        CategoryChart rps = new CategoryChartBuilder().width(900).height(450).title("HTTP requests/s, same guest")
                .xAxisTitle("path and concurrent connections").yAxisTitle("requests/s").build();
        CategoryChart p99 = new CategoryChartBuilder().width(900).height(450).title("HTTP p99 latency (ms)")
                .xAxisTitle("path and concurrent connections").yAxisTitle("ms").build();
        List<String> x = new ArrayList<>();
        for (String p : PATHS) {
            for (int c : CONCURRENCY) {
                x.add((p.contains("peek") ? "cgi " : "static ") + c);
            }
        }
        for (Map.Entry<String, Wrk[]> e : rows.entrySet()) {
            List<Double> r = new ArrayList<>();
            List<Double> l = new ArrayList<>();
            for (Wrk w : e.getValue()) {
                r.add(w.rps());
                l.add(w.p99Ms());
            }
            rps.addSeries(e.getKey(), x, r);
            p99.addSeries(e.getKey(), x, l);
        }
        BitmapEncoder.saveBitmap(rps, out.resolve("overhead-rps").toString(), BitmapEncoder.BitmapFormat.PNG);
        BitmapEncoder.saveBitmap(p99, out.resolve("overhead-p99").toString(), BitmapEncoder.BitmapFormat.PNG);
    }

    /**
     * Stops both daemons (SIGTERM, as systemd would), starts them again with {@code vmExtra} in
     * [vm], and pairs again once both answer (the logs still hold the first daemons' ready lines).
     */
    static void restartDaemonsAndPair(HostPairLab lab, String... vmExtra) throws Exception {
        for (HostPairLab.Host h : new HostPairLab.Host[] {lab.a, lab.b}) {
            h.daemon.destroy();
            if (!h.daemon.waitFor(30, java.util.concurrent.TimeUnit.SECONDS)) {
                h.daemon.destroyForcibly().waitFor();
            }
        }
        lab.writeConfigs(vmExtra);
        lab.startDaemon(lab.b);
        lab.startDaemon(lab.a);
        for (long deadline = System.nanoTime() + 120_000_000_000L; ; Thread.sleep(500)) {
            try {
                LabControl.call(lab.b, "status", null);
                LabControl.call(lab.a, "pair", lab.domain);
                return;
            } catch (IllegalStateException e) {
                if (System.nanoTime() > deadline) {
                    throw e;
                }
            }
        }
    }

    private Wrk[] measure(int seconds) {
        Wrk[] r = new Wrk[PATHS.length * CONCURRENCY.length];
        for (int p = 0; p < PATHS.length; p++) {
            for (int i = 0; i < CONCURRENCY.length; i++) {
                int k = p * CONCURRENCY.length + i;
                r[k] = wrk(CONCURRENCY[i], seconds, PATHS[p]);
                say(String.format(Locale.ROOT, "  %s c=%d: %.0f req/s, p50 %.1f ms, p99 %.1f ms", PATHS[p], CONCURRENCY[i], r[k].rps(),
                        r[k].p50Ms(), r[k].p99Ms()));
            }
        }
        return r;
    }

    // ------------------------------------------------------------------ 2. checkpoints vs dirty rate

    private void dirtyRate() throws Exception {
        say("checkpoints against the guest's dirty rate");
        LabControl.call(lab.a, "pair", lab.domain);
        int rounds = quick ? 4 : 10;
        int[] mib = {0, 1, 8, 32};
        md.append("### Checkpoints against the guest's dirty rate (128 MiB guest, `/cgi-bin/dirty?N` before each checkpoint)\n\n");
        md.append("| MiB dirtied per checkpoint | checkpoints | paused ms (median) | paused ms (max) | dirty pages (median) | wire KiB (median) | SVM ready ms (median) |\n");
        md.append("|---|---|---|---|---|---|---|\n");
        XYChart chart = new XYChartBuilder().width(800).height(450).title("Checkpoint cost against dirty memory")
                .xAxisTitle("MiB dirtied since the last checkpoint").yAxisTitle("PVM paused (ms)").build();
        List<Double> xs = new ArrayList<>();
        List<Double> paused = new ArrayList<>();
        for (int n : mib) {
            List<Double> p = new ArrayList<>();
            List<Double> pages = new ArrayList<>();
            List<Double> wire = new ArrayList<>();
            List<Double> ready = new ArrayList<>();
            for (int i = 0; i < rounds; i++) {
                if (n > 0) {
                    lab.lan.httpGet("/cgi-bin/dirty?" + n, Duration.ofSeconds(60));
                }
                JsonNode c = LabControl.call(lab.a, "checkpoint", lab.domain);
                p.add(c.path("paused_ms").asDouble());
                pages.add(c.path("dirty_pages").asDouble());
                wire.add(c.path("wire_bytes").asDouble() / 1024);
                ready.add(c.path("svm_ready_ms").asDouble());
                xs.add((double) n);
                paused.add(c.path("paused_ms").asDouble());
            }
            md.append(String.format(Locale.ROOT, "| %d | %d | %.1f | %.1f | %.0f | %.0f | %.1f |%n", n, rounds, median(p), max(p), median(pages),
                    median(wire), median(ready)));
            say(String.format(Locale.ROOT, "  %d MiB: paused median %.1f ms, %.0f pages", n, median(p), median(pages)));
        }
        md.append('\n');
        chart.getStyler().setDefaultSeriesRenderStyle(org.knowm.xchart.XYSeries.XYSeriesRenderStyle.Scatter);
        chart.addSeries("each checkpoint", xs, paused);
        BitmapEncoder.saveBitmap(chart, out.resolve("checkpoint-vs-dirty").toString(), BitmapEncoder.BitmapFormat.PNG);
    }

    // ------------------------------------------------------------------ 3. application matrix

    /** One kind of client: a request and what a right answer looks like. */
    interface App {
        String name();

        /** One request; the answer, or null when there was none in time. */
        String request() throws Exception;

        /** Does this answer follow the previous one (e.g. a counter that must grow by one)? */
        default boolean follows(String previous, String answer) {
            return true;
        }
    }

    private App http(String name, String path) {
        return new App() {
            @Override
            public String name() {
                return name;
            }

            @Override
            public String request() throws Exception {
                return NetNamespace.call(lab.lan.ns().name(), () -> {
                    try (Socket s = new Socket()) {
                        s.connect(new InetSocketAddress(LabLan.GUEST_IP, 80), 5000);
                        s.setSoTimeout(20_000);
                        s.getOutputStream().write(("GET " + path + " HTTP/1.0\r\nHost: guest\r\n\r\n").getBytes(StandardCharsets.US_ASCII));
                        String all = new String(s.getInputStream().readAllBytes(), StandardCharsets.ISO_8859_1);
                        int body = all.indexOf("\r\n\r\n");
                        return all.startsWith("HTTP/1.") && all.contains(" 200 ") && body > 0 ? all.substring(body + 4) : null;
                    }
                });
            }

            @Override
            public boolean follows(String previous, String answer) {
                if (!path.equals("/cgi-bin/counter") || previous == null) {
                    return true;
                }
                return Integer.parseInt(answer.trim().substring(6)) == Integer.parseInt(previous.trim().substring(6)) + 1;
            }
        };
    }

    private App echo() throws Exception {
        Socket s = lab.openEcho();
        OutputStream o = s.getOutputStream();
        BufferedReader in = new BufferedReader(new InputStreamReader(s.getInputStream(), StandardCharsets.US_ASCII));
        int[] seq = {0};
        return new App() {
            @Override
            public String name() {
                return "TCP echo (one long connection)";
            }

            @Override
            public String request() throws Exception {
                String line = "line " + (++seq[0]);
                o.write((line + "\n").getBytes(StandardCharsets.US_ASCII));
                String back = in.readLine();
                return line.equals(back) ? back : null;
            }
        };
    }

    private App udp() throws Exception {
        DatagramSocket d = NetNamespace.call(lab.lan.ns().name(), () -> {
            DatagramSocket x = new DatagramSocket();
            x.setSoTimeout(1000);
            return x;
        });
        InetAddress guest = InetAddress.getByName(LabLan.GUEST_IP);
        return new App() {
            @Override
            public String name() {
                return "UDP request/response";
            }

            @Override
            public String request() throws Exception {
                byte[] q = "ping".getBytes(StandardCharsets.US_ASCII);
                byte[] buf = new byte[1500];
                for (int attempt = 0; attempt < 10; attempt++) { // UDP clients retry on their own
                    d.send(new DatagramPacket(q, q.length, guest, 9));
                    try {
                        DatagramPacket p = new DatagramPacket(buf, buf.length);
                        d.receive(p);
                        return new String(p.getData(), 0, p.getLength(), StandardCharsets.US_ASCII);
                    } catch (java.net.SocketTimeoutException e) {
                        // retry
                    }
                }
                return null;
            }
        };
    }

    private void applicationMatrix() throws Exception {
        say("application matrix");
        List<App> apps = List.of(http("static HTTP", "/index.html"), http("CGI counter", "/cgi-bin/counter"),
                http("HTTP with a Date header", "/cgi-bin/date"), echo(), udp());
        int seconds = quick ? 8 : 30;
        md.append("### Application matrix (128 MiB guest, one client per service)\n\n");
        md.append("| service | requests | checkpoints | per 1000 requests | errors in steady state | errors across a failover | longest wait across the failover (ms) |\n");
        md.append("|---|---|---|---|---|---|---|\n");
        Map<String, long[]> steady = new LinkedHashMap<>();
        for (App a : apps) {
            long e0 = LabControl.call(lab.a, "status", null).path("checkpoint").asLong();
            long end = System.nanoTime() + seconds * 1_000_000_000L;
            long n = 0;
            long errors = 0;
            String prev = null;
            while (System.nanoTime() < end) {
                String r = a.request();
                n++;
                if (r == null || !a.follows(prev, r)) {
                    errors++;
                }
                prev = r;
            }
            long ckpts = LabControl.call(lab.a, "status", null).path("checkpoint").asLong() - e0;
            steady.put(a.name(), new long[] {n, ckpts, errors});
            say(String.format(Locale.ROOT, "  %s: %d requests, %d checkpoints", a.name(), n, ckpts));
        }

        say("application matrix: failover with every client running");
        AtomicBoolean running = new AtomicBoolean(true);
        Map<String, long[]> across = new LinkedHashMap<>();
        List<Thread> clients = new ArrayList<>();
        for (App a : apps) {
            long[] r = new long[3]; // requests, errors, longest wait ms
            across.put(a.name(), r);
            Thread t = new Thread(() -> {
                String prev = null;
                while (running.get()) {
                    long t0 = System.nanoTime();
                    String ans;
                    try {
                        ans = a.request();
                    } catch (Exception e) {
                        ans = null;
                    }
                    synchronized (r) {
                        r[0]++;
                        if (ans == null || !a.follows(prev, ans)) {
                            r[1]++;
                        }
                        r[2] = Math.max(r[2], (System.nanoTime() - t0) / 1_000_000);
                    }
                    prev = ans;
                    try {
                        Thread.sleep(50);
                    } catch (InterruptedException e) {
                        return;
                    }
                }
            }, "bench-" + a.name());
            t.start();
            clients.add(t);
        }
        Thread.sleep(3000);
        Command.run(Duration.ofSeconds(5), "kill", "-9", Long.toString(HostPairLab.qemuPid(lab.domain)));
        lab.a.daemon.destroyForcibly().waitFor(10, TimeUnit.SECONDS);
        long deadline = System.nanoTime() + 30_000_000_000L;
        while (System.nanoTime() < deadline && !"ACTIVE".equals(LabControl.call(lab.b, "status", null).path("state").asText())) {
            Thread.sleep(100);
        }
        Thread.sleep(6000);
        running.set(false);
        for (Thread t : clients) {
            t.join(30_000);
        }
        for (App a : apps) {
            long[] s = steady.get(a.name());
            long[] f = across.get(a.name());
            md.append(String.format(Locale.ROOT, "| %s | %d | %d | %.1f | %d | %d of %d | %d |%n", a.name(), s[0], s[1], s[0] == 0 ? 0.0
                    : s[1] * 1000.0 / s[0], s[2], f[1], f[0], f[2]));
        }
        md.append('\n');
    }

    // ------------------------------------------------------------------ 4. failover gap

    private void failoverGaps() throws Exception {
        int runs = quick ? 3 : 10;
        say("failover gap over " + runs + " demo runs");
        List<Double> gaps = new ArrayList<>();
        for (int i = 0; i < runs; i++) {
            Process p = new ProcessBuilder(Lab.repoRoot().resolve("bin/colo").toString(), "demo", "--json", "--checkpoints", "1")
                    .redirectError(ProcessBuilder.Redirect.DISCARD).start();
            String o = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
            p.waitFor(5, TimeUnit.MINUTES);
            JsonNode s = JSON.readTree(o);
            gaps.add(s.path("failover_gap_ms").asDouble());
            say(String.format(Locale.ROOT, "  run %d: gap %.0f ms, lost %d, continuous %s, echo %s", i + 1, gaps.get(i),
                    s.path("requests_lost").asLong(), s.path("counter_strictly_continuous").asBoolean(), s.path("echo_connection_survived").asBoolean()));
        }
        md.append("### Failover gap (`colo demo --json`, kill -9 of the primary's QEMU and daemon; last answer before to first after)\n\n");
        md.append(String.format(Locale.ROOT, "| runs | min ms | median ms | max ms |%n|---|---|---|---|%n| %d | %.0f | %.0f | %.0f |%n%n", runs,
                gaps.stream().mapToDouble(Double::doubleValue).min().orElse(Double.NaN), median(gaps), max(gaps)));
        CategoryChart c = new CategoryChartBuilder().width(800).height(450).title("Failover gap per run (client-visible)")
                .xAxisTitle("run").yAxisTitle("ms").build();
        List<String> x = new ArrayList<>();
        for (int i = 0; i < gaps.size(); i++) {
            x.add(Integer.toString(i + 1));
        }
        c.addSeries("gap", x, gaps);
        BitmapEncoder.saveBitmap(c, out.resolve("failover-gap").toString(), BitmapEncoder.BitmapFormat.PNG);
    }

    // ------------------------------------------------------------------ helpers

    private static double median(List<Double> v) {
        List<Double> s = new ArrayList<>(v);
        s.sort(Double::compare);
        return s.isEmpty() ? Double.NaN : s.get(s.size() / 2);
    }

    private static double max(List<Double> v) {
        return v.stream().mapToDouble(Double::doubleValue).max().orElse(Double.NaN);
    }
}
