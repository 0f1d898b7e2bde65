package dev.colo.cli;

import static org.assertj.core.api.Assertions.assertThat;

import com.fasterxml.jackson.databind.JsonNode;
import dev.colo.lab.Lab;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;

/**
 * The README's demo, run exactly as a user runs it ({@code bin/colo demo --json}), with its summary
 * asserted: nothing acknowledged lost, the counter strictly continuous, the echo connection alive,
 * a failover gap reported, and nothing left behind.
 */
class DemoIT {
    @Test
    void theDemoSurvivesTheLossOfThePrimaryHostAndCleansUp() throws Exception {
        Lab.require();
        Path err = Files.createTempFile("colo-demo", ".log");
        Process p = new ProcessBuilder(Lab.repoRoot().resolve("bin/colo").toString(), "demo", "--json")
                .redirectError(err.toFile()).start();
        String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        boolean done = p.waitFor(5, TimeUnit.MINUTES);
        String progress = Files.readString(err);
        System.out.println(progress + out);
        assertThat(done).as("demo finished within 5 minutes").isTrue();
        assertThat(p.exitValue()).as(progress).isZero();
        JsonNode s = ControlClient.JSON.readTree(out);
        assertThat(s.path("requests_lost").asLong()).isZero();
        assertThat(s.path("requests_acknowledged").asLong()).isEqualTo(s.path("requests_sent").asLong()).isPositive();
        assertThat(s.path("counter_strictly_continuous").asBoolean()).isTrue();
        assertThat(s.path("echo_connection_survived").asBoolean()).isTrue();
        assertThat(s.path("failover_gap_ms").asLong()).isPositive().isLessThan(20_000);
        assertThat(s.path("checkpoints")).hasSize(2);
        JsonNode m = s.path("mixed_load");
        assertThat(m.isMissingNode()).as("the demo runs the mixed load by default").isFalse();
        for (String zero : new String[] {"failed", "broken_connections", "records_missing", "records_duplicated", "tokens_rejected", "udp_lost",
                "udp_duplicated"}) {
            assertThat(m.path(zero).asLong()).as(zero + " " + m).isZero();
        }
        assertThat(m.path("records_acknowledged").asLong()).isPositive();
        assertThat(m.path("echo_intact").asBoolean()).isTrue();
        assertThat(progress).contains("killing host-a").contains("cleaning up");
        assertThat(leftovers()).as("namespaces and domains the demo made").isEmpty();
        System.out.printf("demo IT: %d requests, 0 lost, gap %d ms; mixed load %d requests, longest wait %d ms across the kill, %d ms in the run%n",
                s.path("requests_sent").asLong(), s.path("failover_gap_ms").asLong(), m.path("requests").asLong(),
                m.path("longest_wait_across_kill_ms").asLong(), m.path("longest_wait_ms").asLong());
    }

    private static String leftovers() throws IOException, InterruptedException {
        Process ns = new ProcessBuilder("ip", "netns", "list").start();
        String names = new String(ns.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        ns.waitFor();
        Process virsh = new ProcessBuilder("virsh", "-c", "qemu:///system", "list", "--all", "--name").start();
        String domains = new String(virsh.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        virsh.waitFor();
        StringBuilder b = new StringBuilder();
        for (String l : (names + "\n" + domains).split("\n")) {
            if (l.contains("colo-demo")) {
                b.append(l).append('\n');
            }
        }
        return b.toString();
    }
}
