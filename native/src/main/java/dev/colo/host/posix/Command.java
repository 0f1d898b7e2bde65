package dev.colo.host.posix;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;

/**
 * Runs a host command (iproute2, nft, virsh) with a timeout; output is captured, never inherited.
 * The daemon plumbs its tap with it; the lab builds namespaces and bridges with it.
 */
public final class Command {
    private Command() {}

    /** The outcome of one command. */
    public record Result(List<String> command, int exitCode, String out, String err) {
        public boolean ok() {
            return exitCode == 0;
        }

        public Result orThrow() {
            if (exitCode != 0) {
                throw new IllegalStateException("command failed (exit " + exitCode + "): " + String.join(" ", command)
                        + "\nstdout: " + out.strip() + "\nstderr: " + err.strip());
            }
            return this;
        }
    }

    public static Result run(Duration timeout, String... command) {
        return run(timeout, List.of(command));
    }

    public static Result run(Duration timeout, List<String> command) {
        ProcessBuilder pb = new ProcessBuilder(command);
        pb.redirectInput(ProcessBuilder.Redirect.from(new java.io.File("/dev/null")));
        Process p;
        try {
            p = pb.start();
        } catch (IOException e) {
            return new Result(command, 127, "", "cannot start: " + e.getMessage());
        }
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        ByteArrayOutputStream err = new ByteArrayOutputStream();
        Thread to = pump(p.getInputStream(), out);
        Thread te = pump(p.getErrorStream(), err);
        try {
            if (!p.waitFor(timeout.toMillis(), TimeUnit.MILLISECONDS)) {
                p.destroyForcibly();
                p.waitFor(5, TimeUnit.SECONDS);
                to.join(1000);
                te.join(1000);
                return new Result(command, 124, out.toString(StandardCharsets.UTF_8),
                        err.toString(StandardCharsets.UTF_8) + "\n(timed out after " + timeout.toMillis() + " ms)");
            }
            to.join(5000);
            te.join(5000);
        } catch (InterruptedException e) {
            p.destroyForcibly();
            Thread.currentThread().interrupt();
            throw new IllegalStateException("interrupted running " + command, e);
        }
        return new Result(command, p.exitValue(), out.toString(StandardCharsets.UTF_8), err.toString(StandardCharsets.UTF_8));
    }

    private static Thread pump(InputStream in, ByteArrayOutputStream sink) {
        Thread t = new Thread(() -> {
            try (in) {
                in.transferTo(sink);
            } catch (IOException e) {
                throw new UncheckedIOException(e);
            }
        }, "command-pump");
        t.setDaemon(true);
        t.start();
        return t;
    }

    public static List<String> concat(List<String> a, String... b) {
        List<String> out = new ArrayList<>(a);
        out.addAll(List.of(b));
        return out;
    }
}
