package dev.colo.cli;

import static org.assertj.core.api.Assertions.assertThat;

import dev.colo.lab.Lab;
import java.io.ByteArrayOutputStream;
import java.io.File;
import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The packaged systemd unit under a real systemd: {@code systemd-analyze verify} on the unit as an
 * instance, then {@code scripts/systemd-check}, which boots a systemd-nspawn container, runs
 * colo@lab.service in it and checks READY, STATUS, the journal, a clean stop and exit 78 without a
 * restart on a bad config.
 */
class SystemdUnitIT {
    private static final Duration CHECK_TIMEOUT = Duration.ofMinutes(3);
    private static final Pattern SKIPPED = Pattern.compile("(?m)^SKIPPED: (.*)$");

    record Run(int code, String out) {}

    static Path repoRoot() {
        Path p = Path.of("").toAbsolutePath();
        while (p != null) {
            if (Files.isRegularFile(p.resolve("pom.xml")) && Files.isRegularFile(p.resolve("bin/colo"))) {
                return p;
            }
            p = p.getParent();
        }
        return Lab.repoRoot();
    }

    /** Runs a command with stdout and stderr merged; on timeout SIGTERM first, so the script cleans up. */
    static Run run(Duration timeout, List<String> command, Path dir) throws Exception {
        ProcessBuilder pb = new ProcessBuilder(command).directory(dir.toFile()).redirectErrorStream(true);
        pb.redirectInput(ProcessBuilder.Redirect.from(new File("/dev/null")));
        Process p = pb.start();
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        Thread pump = new Thread(() -> copy(p.getInputStream(), out), "systemd-check-output");
        pump.start();
        if (!p.waitFor(timeout.toMillis(), TimeUnit.MILLISECONDS)) {
            p.destroy(); // SIGTERM: the script's trap powers the container off and removes its temp dirs
            if (!p.waitFor(60, TimeUnit.SECONDS)) {
                p.destroyForcibly();
                p.waitFor(10, TimeUnit.SECONDS);
            }
            pump.join(5000);
            return new Run(124, out.toString(StandardCharsets.UTF_8) + "\n(timed out after " + timeout.toSeconds() + " s)");
        }
        pump.join(5000);
        return new Run(p.exitValue(), out.toString(StandardCharsets.UTF_8));
    }

    private static void copy(InputStream in, ByteArrayOutputStream out) {
        try {
            in.transferTo(out);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    @Test
    void unitVerifiesAndRunsUnderSystemdInAContainer(@TempDir Path tmp) throws Exception {
        Path root = repoRoot();
        Path unit = root.resolve("packaging/systemd/colo@.service");
        assertThat(unit).isRegularFile();
        // verify checks that ExecStart exists: scripts/setup installs /usr/local/bin/colo.
        assertThat(Path.of("/usr/local/bin/colo")).as("/usr/local/bin/colo is missing; run scripts/setup").isExecutable();

        Path instance = tmp.resolve("colo@lab.service");
        Files.copy(unit, instance);
        Run verify = run(Duration.ofSeconds(60), List.of("systemd-analyze", "verify", instance.toString()), tmp);
        System.out.println("$ systemd-analyze verify colo@lab.service  -> exit " + verify.code() + "\n" + verify.out());
        assertThat(verify.code()).as(verify.out()).isZero();
        assertThat(verify.out().lines().filter(l -> l.contains("colo@")).toList()).as("verify complaints about the unit").isEmpty();

        Path script = root.resolve("scripts/systemd-check");
        Run check = run(CHECK_TIMEOUT, List.of(script.toString()), root);
        System.out.println("$ scripts/systemd-check  -> exit " + check.code() + "\n" + check.out());
        Matcher skipped = SKIPPED.matcher(check.out());
        if (check.code() == 0 && skipped.find()) {
            Assumptions.assumeTrue(false, "systemd-check skipped: " + skipped.group(1));
        }
        assertThat(check.code()).as(check.out()).isZero();
        assertThat(check.out()).as(check.out())
                .doesNotContain("FAIL:")
                .contains("PASS: systemctl is-active colo@lab.service: active")
                .contains("PASS: StatusText: ")
                .contains("PASS: journalctl -u colo@lab.service has the daemon's lines")
                .contains("PASS: systemctl stop colo@lab.service: ActiveState=inactive Result=success")
                .contains("PASS: bad config (role = leader): ActiveState=failed ExecMainStatus=78")
                .contains("PASS: colo@.service works under systemd");
        assertThat(check.out()).containsPattern("PASS: StatusText: \"(protecting lab as secondary|secondary [A-Z_]+ term \\d+ checkpoint \\d+)\"");
    }
}
