package dev.colo.cli;

import static org.assertj.core.api.Assertions.assertThat;

import dev.colo.daemon.control.ControlApi;
import dev.colo.daemon.control.ControlServer;
import dev.colo.daemon.control.OperationException;
import dev.colo.daemon.events.EventJournal;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import picocli.CommandLine;

/**
 * Every daemon verb through picocli with captured output, against a real control socket served by
 * the daemon's own ControlServer with a test double behind it (DaemonPairIT runs the real daemon).
 */
class DaemonCommandsTest {
    final List<String> calls = new java.util.concurrent.CopyOnWriteArrayList<>();
    Path socket;
    ControlServer server;
    EventJournal events;

    static Map<String, Object> protectedStatus() {
        Map<String, Object> peer = new LinkedHashMap<>();
        peer.put("node", "host-b");
        peer.put("address", "10.0.0.12:7450");
        peer.put("link", "up");
        peer.put("last_heartbeat_ms_ago", 12);
        Map<String, Object> ckpt = new LinkedHashMap<>();
        ckpt.put("seq", 9);
        ckpt.put("age_ms", 2300);
        ckpt.put("trigger", "divergence");
        ckpt.put("reason", "tcp payload mismatch");
        ckpt.put("outcome", "committed");
        ckpt.put("full", false);
        ckpt.put("paused_ms", 41.2);
        ckpt.put("dirty_pages", 310);
        ckpt.put("wire_bytes", 604_802);
        ckpt.put("svm_ready_ms", 70.1);
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("vm", "web1");
        m.put("node", "host-a");
        m.put("role", "primary");
        m.put("state", "PROTECTED");
        m.put("term", 1);
        m.put("checkpoint", 9);
        m.put("domain", "web1");
        m.put("peer", peer);
        m.put("last_checkpoint", ckpt);
        m.put("checkpoints_per_minute", 4);
        m.put("held_frames", 3);
        m.put("matched_frames", 1200);
        m.put("checkpoint_requests", 5);
        return m;
    }

    @BeforeEach
    void start() throws Exception {
        socket = Files.createTempDirectory("colo-cli").resolve("run").resolve("colo.sock");
        events = new EventJournal(100, Map.of("vm", "web1", "pair", "web1", "node", "host-a"));
        server = new ControlServer(socket, new ControlApi() {
            @Override
            public Map<String, Object> status() {
                calls.add("status");
                return protectedStatus();
            }

            @Override
            public Map<String, Object> pair(String domain, Duration timeout) throws OperationException {
                calls.add("pair " + domain + " " + timeout.toSeconds());
                if (!domain.equals("web1")) {
                    throw new OperationException("domain '" + domain + "' not found in libvirt");
                }
                return protectedStatus();
            }

            @Override
            public Map<String, Object> unpair(String domain) {
                calls.add("unpair " + domain);
                Map<String, Object> m = protectedStatus();
                m.put("state", "UNPROTECTED");
                return m;
            }

            @Override
            public Map<String, Object> checkpoint(String domain, Duration timeout) {
                calls.add("checkpoint " + domain);
                return Map.of("seq", 10, "outcome", "committed", "full", false, "paused_ms", 39.5, "dirty_pages", 120, "raw_bytes",
                        491_520, "wire_bytes", 200_000, "device_state_bytes", 616_000, "svm_ready_ms", 65.0);
            }

            @Override
            public Map<String, Object> failover(String domain, boolean planned, boolean force) throws OperationException {
                calls.add("failover " + domain + " planned=" + planned + " force=" + force);
                if (planned) {
                    throw new OperationException("a planned switchover starts on the primary in PROTECTED; this node is STANDBY");
                }
                Map<String, Object> m = protectedStatus();
                m.put("state", "ACTIVE");
                return m;
            }
        }, events);
    }

    @AfterEach
    void stop() {
        server.close();
    }

    ColoRun colo(String... args) {
        return ColoRun.of(args);
    }

    String s() {
        return socket.toString();
    }

    @Test
    void statusPrintsATableAndJson() throws Exception {
        ColoRun r = colo("status", "--socket", s());
        assertThat(r.code()).isZero();
        assertThat(r.out()).contains("VM").contains("PROTECTED").contains("host-b@10.0.0.12:7450").contains("up (last heartbeat 12 ms ago)")
                .contains("last checkpoint      9, 2 s ago, divergence (tcp payload mismatch), committed, paused 41.2 ms, 310 pages")
                .contains("checkpoints/minute   4").contains("held output          3 frames");
        ColoRun j = colo("status", "--json", "--socket", s());
        assertThat(ControlClient.JSON.readTree(j.out()).path("last_checkpoint").path("paused_ms").asDouble()).isEqualTo(41.2);
    }

    @Test
    void pairShowsProgressAndTheResultOrTheReason() {
        ColoRun ok = colo("pair", "web1", "--socket", s(), "--timeout", "30");
        assertThat(ok.code()).isZero();
        assertThat(ok.err()).contains("pairing web1: preparing the PVM");
        assertThat(ok.out()).contains("web1 PROTECTED by host-b from checkpoint 9");
        assertThat(calls).contains("pair web1 30");
        assertThat(colo("pair", "web1", "--peer", "10.0.0.12", "--socket", s()).code()).isZero();
        assertThat(colo("pair", "web1", "--peer", "host-b", "--socket", s()).code()).isZero();
        ColoRun wrongPeer = colo("pair", "web1", "--peer", "10.0.0.99:7450", "--socket", s());
        assertThat(wrongPeer.code()).isEqualTo(ExitCodes.OPERATION_FAILED);
        assertThat(wrongPeer.err()).contains("this daemon's peer is host-b at 10.0.0.12:7450, not 10.0.0.99:7450");
        ColoRun missing = colo("pair", "db7", "--socket", s());
        assertThat(missing.code()).isEqualTo(ExitCodes.OPERATION_FAILED);
        assertThat(missing.err()).contains("colo pair: domain 'db7' not found in libvirt");
    }

    @Test
    void unpairCheckpointAndEvents() {
        assertThat(colo("unpair", "web1", "--socket", s()).out()).contains("web1 is UNPROTECTED");
        ColoRun c = colo("checkpoint", "web1", "--socket", s());
        assertThat(c.out()).contains("checkpoint 10 committed: PVM paused 39.5 ms, 120 dirty pages, 480 KiB raw");
        events.info("state", "state changed", "from", "STANDBY", "to", "ACTIVE", "reason", "primary lost");
        ColoRun e = colo("events", "--socket", s());
        assertThat(e.code()).isZero();
        assertThat(e.out()).contains("state").contains("state changed from=STANDBY to=ACTIVE reason=primary lost").doesNotContain("node=");
        ColoRun ej = colo("events", "--json", "--socket", s());
        assertThat(ej.out()).contains("\"kind\":\"state\"").contains("\"to\":\"ACTIVE\"");
    }

    @Test
    void failoverNeedsAModeAndAConfirmation() {
        ColoRun none = colo("failover", "web1", "--socket", s());
        assertThat(none.code()).isEqualTo(ExitCodes.USAGE);
        assertThat(none.err()).contains("exactly one of --planned");
        ColoRun unconfirmed = colo("failover", "web1", "--force", "--socket", s());
        assertThat(unconfirmed.code()).isEqualTo(ExitCodes.FAILED);
        assertThat(unconfirmed.err()).contains("not confirmed; nothing done");
        assertThat(calls).noneMatch(c -> c.startsWith("failover"));
        ColoRun forced = colo("failover", "web1", "--force", "--yes", "--socket", s());
        assertThat(forced.code()).isZero();
        assertThat(forced.out()).contains("this node is now ACTIVE");
        ColoRun planned = colo("failover", "web1", "--planned", "-y", "--socket", s());
        assertThat(planned.code()).isEqualTo(ExitCodes.OPERATION_FAILED);
        assertThat(planned.err()).contains("starts on the primary");
    }

    @Test
    void aDiskCopyWithoutARateYetSaysItsTimeLeftIsNotKnown() throws Exception {
        assertThat(DaemonCommands.timeLeft(ControlClient.JSON.readTree("{\"eta_s\":-1}"))).isEqualTo("time left not known yet");
        assertThat(DaemonCommands.timeLeft(ControlClient.JSON.readTree("{}"))).isEqualTo("time left not known yet");
        assertThat(DaemonCommands.timeLeft(ControlClient.JSON.readTree("{\"eta_s\":42}"))).isEqualTo("about 42 s left");
    }

    @Test
    void aMissingDaemonIsExplained() {
        ColoRun r = colo("status", "--socket", socket.resolveSibling("absent.sock").toString());
        assertThat(r.code()).isEqualTo(ExitCodes.DAEMON_UNREACHABLE);
        assertThat(r.err()).contains("the colo daemon is not running").contains("systemctl start colo@VM");
    }

    @Test
    void everyVerbHasHelpWithExamples() {
        for (String verb : List.of("status", "pair", "unpair", "failover", "checkpoint", "events", "daemon")) {
            ColoRun r = colo(verb, "--help");
            assertThat(r.code()).as(verb).isZero();
            assertThat(r.out()).as(verb).contains("Usage: colo " + verb).contains("Examples:");
        }
    }

    @Test
    void aBadDaemonConfigExitsWith78AndNamesTheProblem() throws Exception {
        Path conf = socket.getParent().getParent().resolve("bad.conf");
        Files.writeString(conf, "[node]\nname = a\nrole = leader\n");
        assertThat(colo("daemon", "--config", conf.toString()).code()).isEqualTo(78);
    }
}
