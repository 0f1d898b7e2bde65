package dev.colo.cli;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.PrintWriter;
import java.io.StringWriter;
import org.junit.jupiter.api.Test;
import picocli.CommandLine;

/** Every command through picocli's execute, with captured output. */
class ColoCommandTest {
    static ColoRun run(String... args) {
        return ColoRun.of(args);
    }

    @Test
    void versionPrintsColoAndJava() {
        ColoRun r = run("version");
        assertThat(r.code()).isZero();
        assertThat(r.out()).startsWith("colo ").contains("java 17");
    }

    @Test
    void noArgumentsPrintsUsage() {
        ColoRun r = run();
        assertThat(r.code()).isZero();
        assertThat(r.out()).contains("Usage: colo").contains("compare").contains("version");
    }

    @Test
    void typoGetsAClearErrorWithASuggestion() {
        ColoRun r = run("compar");
        assertThat(r.code()).isEqualTo(ExitCodes.USAGE);
        assertThat(r.err()).contains("colo: Unmatched argument").contains("compare").contains("Try 'colo --help'");
    }

    @Test
    void compareHelpHasAnExample() {
        ColoRun r = run("compare", "--help");
        assertThat(r.code()).isZero();
        assertThat(r.out()).contains("--primary-in=SOCKET").contains("tcp:127.0.0.1:9003,server");
    }

    @Test
    void compareRejectsBadSocketsAndMissingOptions() {
        ColoRun bad = run("compare", "--primary-in", "tcp:x", "--secondary-in", "tcp:a:1", "--outdev", "tcp:a:2");
        assertThat(bad.code()).isEqualTo(ExitCodes.USAGE);
        assertThat(bad.err()).contains("'tcp:x': expected tcp:HOST:PORT").contains("Try 'colo compare --help'");
        ColoRun missing = run("compare", "--primary-in", "tcp:a:1");
        assertThat(missing.code()).isEqualTo(ExitCodes.USAGE);
        assertThat(missing.err()).contains("Missing required options");
        ColoRun zero = run("compare", "--primary-in", "tcp:a:1", "--secondary-in", "tcp:a:1", "--outdev", "tcp:a:2", "--compare-timeout", "0");
        assertThat(zero.code()).isEqualTo(ExitCodes.USAGE);
        assertThat(zero.err()).contains("compare timeout must be positive");
    }

    @Test
    void certsCreateWritesAPairCaAndNodeCertificates() throws Exception {
        java.nio.file.Path dir = java.nio.file.Files.createTempDirectory("colo-certs");
        ColoRun r = run("certs", "create", "--pair", "web1", "--node", "host-a", "--node", "host-b", "--dir", dir.toString());
        assertThat(r.code()).isZero();
        assertThat(dir.resolve("host-a/host-a.crt")).exists();
        assertThat(dir.resolve("host-b/pair-ca.crt")).exists();
        assertThat(java.nio.file.attribute.PosixFilePermissions.toString(java.nio.file.Files.getPosixFilePermissions(dir.resolve("host-b/host-b.key")))).isEqualTo("rw-------");
        assertThat(java.nio.file.Files.readString(dir.resolve("host-a/host-a.key"))).startsWith("-----BEGIN PRIVATE KEY-----");
        ColoRun bad = run("certs", "create", "--pair", "web1", "--dir", dir.toString());
        assertThat(bad.code()).isEqualTo(ExitCodes.USAGE);
        assertThat(bad.err()).contains("--node");
    }

    @Test
    void compareReportsSocketsItCannotOpen() {
        // A unix listener in a directory that does not exist cannot be bound.
        ColoRun r = run("compare", "--primary-in", "unix:/nonexistent/colo/p.sock,server", "--secondary-in", "tcp:127.0.0.1:1",
                "--outdev", "tcp:127.0.0.1:2");
        assertThat(r.code()).isEqualTo(ExitCodes.OPERATION_FAILED);
        assertThat(r.err()).contains("cannot open sockets");
    }
}
