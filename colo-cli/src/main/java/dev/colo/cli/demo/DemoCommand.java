package dev.colo.cli.demo;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.colo.lab.ClientLoad;
import dev.colo.lab.LabLan;
import dev.colo.lab.PromiseLoad;
import dev.colo.lab.HostPairLab;
import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.io.OutputStream;
import java.io.PrintWriter;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.Callable;
import java.util.concurrent.TimeUnit;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/**
 * {@code colo demo}: the whole product on one machine, as an operator would run it on two hosts.
 * Three network namespaces (client, host A, host B) on one bridge, a colo daemon per host, the test
 * guest paired A to B, clients counting and holding an echo connection, a checkpoint, then SIGKILL
 * of the primary's QEMU and daemon. Prints what the clients saw. Cleans up everything it made.
 */
@Command(name = "demo", mixinStandardHelpOptions = true,
        description = "Run a protected VM on one machine, kill its primary host, and show that clients did not notice.",
        footer = {"", "Needs what scripts/setup installs (libvirtd, QEMU, the test guest) and root. Takes about a minute.", "",
                "Examples:", "  colo demo", "  colo demo --json"})
public final class DemoCommand implements Callable<Integer> {
    private static final ObjectMapper JSON = new ObjectMapper();

    @CommandLine.Spec
    CommandLine.Model.CommandSpec spec;

    @Option(names = "--json", description = "Print the summary as JSON (progress still goes to stderr).")
    boolean json;

    @Option(names = "--checkpoints", defaultValue = "2", description = "On-demand checkpoints before the kill (default ${DEFAULT-VALUE}).")
    int checkpoints;

    @Option(names = "--light", description = "Only the sparse counter client and the echo connection, without the mixed load.")
    boolean light;

    private PrintWriter progress;
    private long t0;

    private void step(String what) {
        progress.printf("[%5.1f s] %s%n", (System.nanoTime() - t0) / 1e9, what);
        progress.flush();
    }

    @Override
    public Integer call() throws Exception {
        progress = spec.commandLine().getErr();
        t0 = System.nanoTime();
        if (!"root".equals(System.getProperty("user.name"))) {
            progress.println("colo demo: run as root (it creates network namespaces, taps and VMs)");
            return 4;
        }
        HostPairLab[] holder = new HostPairLab[1];
        Thread cleanup = new Thread(() -> {
            HostPairLab lab = holder[0];
            if (lab != null) {
                progress.println("colo demo: interrupted; cleaning up namespaces, daemons and VMs");
                progress.flush();
                lab.close();
            }
        }, "colo-demo-cleanup");
        Runtime.getRuntime().addShutdownHook(cleanup);
        try {
            step("creating namespaces client, host-a, host-b on one bridge; pair certificates; the test guest's domain");
            holder[0] = new HostPairLab("colo-demo-", "demo");
            HostPairLab lab = holder[0];
            lab.deleteFilesOnClose();
            ObjectNode summary = run(lab);
            if (json) {
                spec.commandLine().getOut().println(JSON.writerWithDefaultPrettyPrinter().writeValueAsString(summary));
            } else {
                printHuman(summary);
            }
            spec.commandLine().getOut().flush();
            return summary.path("ok").asBoolean() ? 0 : 1;
        } catch (IllegalStateException e) {
            progress.println("colo demo: " + e.getMessage());
            return 4;
        } finally {
            step("cleaning up");
            HostPairLab lab = holder[0];
            holder[0] = null;
            if (lab != null) {
                lab.close();
            }
            try {
                Runtime.getRuntime().removeShutdownHook(cleanup);
            } catch (IllegalStateException e) {
                // already shutting down: the hook runs
            }
            step("done");
        }
    }

    private ObjectNode run(HostPairLab lab) throws Exception {
        lab.writeConfigs();
        step("starting the colo daemons (host-a primary, host-b secondary)");
        lab.startDaemon(lab.b);
        lab.startDaemon(lab.a);
        lab.awaitReady(lab.a, Duration.ofSeconds(60));
        lab.awaitReady(lab.b, Duration.ofSeconds(60));
        step("pairing " + lab.domain + ": PVM on host-a, SVM on host-b, guest RAM copied while it runs, first checkpoint");
        JsonNode paired = LabControl.call(lab.a, "pair", lab.domain);
        step("PROTECTED from checkpoint " + paired.path("checkpoint").asLong() + "; waiting for the guest to serve");
        int first = lab.lan.awaitCounter(Duration.ofSeconds(120));
        step("clients start: HTTP requests to the counter, and one long-lived TCP echo connection");
        Socket echo = lab.openEcho();
        OutputStream out = echo.getOutputStream();
        BufferedReader in = new BufferedReader(new InputStreamReader(echo.getInputStream(), StandardCharsets.US_ASCII));
        boolean echoBefore = roundTrip(out, in, "before the failover");
        ClientLoad load = new ClientLoad(lab.lan);
        PromiseLoad mixed = null;
        if (!light) {
            step("mixed load starts: 4 record writers, logins with random session tokens, UDP requests, Date-bearing HTTP, an echo stream");
            mixed = new PromiseLoad(lab.lan.ns(), LabLan.GUEST_IP, 4);
        }
        ArrayNode ckpts = JSON.createArrayNode();
        for (int i = 0; i < checkpoints; i++) {
            Thread.sleep(1000);
            JsonNode c = LabControl.call(lab.a, "checkpoint", lab.domain);
            ckpts.add(c);
            step(String.format("checkpoint %d: PVM paused %.1f ms, %d dirty pages, %d bytes on the wire, SVM ready %.1f ms",
                    c.path("seq").asLong(), c.path("paused_ms").asDouble(), c.path("dirty_pages").asLong(), c.path("wire_bytes").asLong(),
                    c.path("svm_ready_ms").asDouble()));
        }
        Thread.sleep(1500);
        step("killing host-a: SIGKILL to the PVM's QEMU and to the primary daemon");
        long killNs = System.nanoTime();
        if (mixed != null) {
            mixed.markFault();
        }
        dev.colo.host.posix.Command.run(Duration.ofSeconds(5), "kill", "-9", Long.toString(HostPairLab.qemuPid(lab.domain)));
        lab.a.daemon.destroyForcibly().waitFor(10, TimeUnit.SECONDS);
        long deadline = System.nanoTime() + 30_000_000_000L;
        String stateB = "";
        while (System.nanoTime() < deadline && !stateB.equals("ACTIVE")) {
            Thread.sleep(100);
            JsonNode s = tryStatus(lab.b);
            stateB = s == null ? "" : s.path("state").asText();
        }
        step("host-b is " + stateB + "; clients keep going for a few seconds");
        Thread.sleep(4000);
        List<ClientLoad.Answer> answers = load.stop();
        PromiseLoad.Result mixedResult = null;
        if (mixed != null) {
            step("mixed load stops; every client finishes its request in flight, then the survivor is checked");
            mixedResult = mixed.stopAndCheck();
        }
        boolean echoAfter = roundTrip(out, in, "after the failover");
        echo.close();

        long lastBefore = -1;
        long firstAfter = -1;
        for (ClientLoad.Answer a : answers) {
            if (a.count() >= 0 && a.atNs() < killNs) {
                lastBefore = a.atNs();
            } else if (a.count() >= 0 && firstAfter < 0 && a.atNs() >= killNs) {
                firstAfter = a.atNs();
            }
        }
        ObjectNode r = JSON.createObjectNode();
        long sent = answers.size();
        long unanswered = ClientLoad.unanswered(answers);
        // With the mixed load, its counter client increments the same counter: then each answer
        // must only be higher than the last (a repeat would be a rolled-back increment).
        boolean continuous = light ? ClientLoad.continuous(answers) : ClientLoad.increasing(answers);
        r.put("requests_sent", sent);
        r.put("requests_acknowledged", sent - unanswered);
        r.put("requests_lost", unanswered);
        r.put("counter_first", first);
        r.put("counter_last", answers.isEmpty() ? -1 : answers.get(answers.size() - 1).count());
        r.put("counter_strictly_continuous", continuous);
        r.put("counter_rule", light ? "each answer is the last plus one" : "each answer is higher than the last (other clients count too)");
        r.put("echo_connection_survived", echoBefore && echoAfter);
        r.put("failover_gap_ms", lastBefore > 0 && firstAfter > 0 ? (firstAfter - lastBefore) / 1_000_000 : -1);
        r.put("takeover_state", stateB);
        r.set("checkpoints", ckpts);
        if (mixedResult != null) {
            ObjectNode m = r.putObject("mixed_load");
            m.put("requests", mixedResult.requests());
            m.put("failed", mixedResult.failed());
            m.put("broken_connections", mixedResult.brokenConnections());
            m.put("records_acknowledged", mixedResult.recordsAnswered());
            m.put("records_missing", mixedResult.recordsMissing());
            m.put("records_duplicated", mixedResult.recordsDuplicated());
            m.put("tokens", mixedResult.tokens());
            m.put("tokens_rejected", mixedResult.tokensRejected());
            m.put("udp_answered", mixedResult.udpAnswered());
            m.put("udp_lost", mixedResult.udpLost());
            m.put("udp_duplicated", mixedResult.udpDuplicated());
            m.put("echo_intact", mixedResult.echoIntact());
            m.put("longest_wait_ms", mixedResult.longestWaitMs());
            m.put("longest_wait_across_kill_ms", mixedResult.longestAcrossFaultMs());
            ArrayNode problems = m.putArray("problems");
            mixedResult.problems().stream().limit(10).forEach(problems::add);
        }
        boolean mixedKept = mixedResult == null || mixedResult.promiseKept();
        r.put("ok", unanswered == 0 && continuous && echoBefore && echoAfter && stateB.equals("ACTIVE") && mixedKept);
        return r;
    }

    private static boolean roundTrip(OutputStream out, BufferedReader in, String line) {
        try {
            out.write((line + "\n").getBytes(StandardCharsets.US_ASCII));
            out.flush();
            return line.equals(in.readLine());
        } catch (java.io.IOException e) {
            return false;
        }
    }

    /** Host B's status while it may still be taking over; null while it does not answer. */
    private static JsonNode tryStatus(HostPairLab.Host h) {
        try {
            return LabControl.call(h, "status", null);
        } catch (IllegalStateException e) {
            return null;
        }
    }

    private void printHuman(JsonNode s) {
        PrintWriter o = spec.commandLine().getOut();
        o.println();
        o.println("colo demo: " + (s.path("ok").asBoolean() ? "the service survived the loss of its primary host" : "FAILED"));
        o.printf("  requests sent / acknowledged / lost   %d / %d / %d%n", s.path("requests_sent").asLong(),
                s.path("requests_acknowledged").asLong(), s.path("requests_lost").asLong());
        o.printf("  counter seen by the client           %d .. %d, %s%n", s.path("counter_first").asLong(), s.path("counter_last").asLong(),
                s.path("counter_strictly_continuous").asBoolean() ? "as it must be: " + s.path("counter_rule").asText() : "NOT continuous");
        o.printf("  long-lived echo connection           %s%n", s.path("echo_connection_survived").asBoolean() ? "survived" : "BROKEN");
        o.printf("  failover gap                         %d ms (last answer before the kill to first answer after)%n",
                s.path("failover_gap_ms").asLong());
        JsonNode m = s.path("mixed_load");
        if (!m.isMissingNode()) {
            o.printf("  mixed load: requests / failed / broken connections   %d / %d / %d%n", m.path("requests").asLong(), m.path("failed").asLong(),
                    m.path("broken_connections").asLong());
            o.printf("  mixed load: records acknowledged / missing / twice   %d / %d / %d on the survivor%n", m.path("records_acknowledged").asLong(),
                    m.path("records_missing").asLong(), m.path("records_duplicated").asLong());
            o.printf("  mixed load: session tokens held / rejected           %d / %d%n", m.path("tokens").asLong(), m.path("tokens_rejected").asLong());
            o.printf("  mixed load: UDP ids answered / lost / twice          %d / %d / %d%n", m.path("udp_answered").asLong(),
                    m.path("udp_lost").asLong(), m.path("udp_duplicated").asLong());
            o.printf("  mixed load: echo stream                              %s%n", m.path("echo_intact").asBoolean() ? "intact" : "BROKEN");
            o.printf("  mixed load: longest client wait                      %d ms across the kill, %d ms in the whole run%n",
                    m.path("longest_wait_across_kill_ms").asLong(), m.path("longest_wait_ms").asLong());
            for (JsonNode p : m.path("problems")) {
                o.println("    " + p.asText());
            }
        }
        for (JsonNode c : s.path("checkpoints")) {
            o.printf("  checkpoint %-3d                       paused %.1f ms, %d pages%n", c.path("seq").asLong(),
                    c.path("paused_ms").asDouble(), c.path("dirty_pages").asLong());
        }
    }
}
