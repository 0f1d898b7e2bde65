package dev.colo.cli;

import static org.assertj.core.api.Assertions.assertThat;

import com.fasterxml.jackson.databind.JsonNode;
import dev.colo.lab.HostPairLab;
import dev.colo.host.posix.Command;
import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.io.OutputStream;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import picocli.CommandLine;

/**
 * The product as operators run it: two real daemon processes, each in its own host namespace,
 * driven only through the colo CLI. Pair a real test guest, checkpoint, then kill -9 the primary's
 * QEMU and daemon; the secondary must take over with the client's counter continuous and its open
 * TCP connection alive.
 */
class DaemonPairIT {
    static ColoRun colo(String... args) {
        return ColoRun.shown(args);
    }

    @Test
    void pairCheckpointAndSurviveTheLossOfThePrimaryHost() throws Exception {
        try (HostPairLab lab = new HostPairLab("pair")) {
            lab.writeConfigs();
            lab.startDaemon(lab.b);
            lab.startDaemon(lab.a);
            lab.awaitReady(lab.a, Duration.ofSeconds(60));
            lab.awaitReady(lab.b, Duration.ofSeconds(60));
            String sa = lab.a.socket.toString();
            String sb = lab.b.socket.toString();

            ColoRun pair = colo("pair", lab.domain, "--socket", sa);
            assertThat(pair.code()).as(pair.err() + "\n--- host-a log:\n" + lab.a.logText() + "\n--- host-b log:\n" + lab.b.logText()).isZero();
            assertThat(pair.out()).contains("PROTECTED");

            int first = lab.lan.awaitCounter(Duration.ofSeconds(120));
            int second = lab.lan.counter(Duration.ofSeconds(20));
            assertThat(second).isEqualTo(first + 1);
            Socket echo = lab.openEcho();
            OutputStream out = echo.getOutputStream();
            BufferedReader in = new BufferedReader(new InputStreamReader(echo.getInputStream(), StandardCharsets.US_ASCII));
            out.write("before failover\n".getBytes(StandardCharsets.US_ASCII));
            assertThat(in.readLine()).isEqualTo("before failover");

            ColoRun ckpt = colo("checkpoint", lab.domain, "--socket", sa);
            assertThat(ckpt.code()).as(ckpt.err()).isZero();
            assertThat(ckpt.out()).contains("committed");
            int third = lab.lan.counter(Duration.ofSeconds(20));
            assertThat(third).isEqualTo(first + 2);

            ColoRun statusA = colo("status", "--json", "--socket", sa);
            JsonNode a = ControlClient.JSON.readTree(statusA.out());
            assertThat(a.path("state").asText()).isEqualTo("PROTECTED");
            assertThat(a.path("checkpoint").asLong()).isGreaterThanOrEqualTo(2);
            assertThat(colo("status", "--socket", sa).out()).contains("PROTECTED").containsPattern("last checkpoint      [0-9]+, ");
            ColoRun statusB = colo("status", "--socket", sb);
            assertThat(statusB.out()).contains("STANDBY");
            assertThat(Command.run(Duration.ofSeconds(10), "ip", "netns", "exec", lab.a.ns.name(), "curl", "-s",
                    "http://127.0.0.1:9467/metrics").out()).contains("colo_checkpoint_paused_seconds_bucket").contains("colo_term").contains("colo_checkpoint_seq");

            // Host A dies: its QEMU and its daemon, both with SIGKILL.
            long qemu = HostPairLab.qemuPid(lab.domain);
            long tKill = System.nanoTime();
            Command.run(Duration.ofSeconds(5), "kill", "-9", Long.toString(qemu));
            lab.a.daemon.destroyForcibly().waitFor(10, TimeUnit.SECONDS);
            int after = lab.lan.counter(Duration.ofSeconds(30));
            long gapMs = (System.nanoTime() - tKill) / 1_000_000;
            assertThat(after).as("the SVM saw every request the PVM saw\n--- host-b log:\n" + lab.b.logText()).isEqualTo(third + 1);
            out.write("after failover\n".getBytes(StandardCharsets.US_ASCII));
            assertThat(in.readLine()).as("the same TCP connection, now served by the promoted SVM").isEqualTo("after failover");
            echo.close();

            ColoRun statusAfter = colo("status", "--json", "--socket", sb);
            JsonNode b = ControlClient.JSON.readTree(statusAfter.out());
            assertThat(b.path("state").asText()).isEqualTo("ACTIVE");
            ColoRun events = colo("events", "--socket", sb);
            assertThat(events.out()).contains("promoted").contains("gratuitous ARP");
            System.out.printf("pair IT: counter %d..%d continuous, echo connection survived, kill to first answer %d ms%n", first, after,
                    gapMs);
        }
    }
}
