package dev.colo.daemon.host;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.util.List;
import java.util.concurrent.TimeUnit;

/** Host network plumbing the daemon does with iproute2, as libvirt does for its own taps. */
public final class HostNet {
    private HostNet() {}

    /** Enslaves {@code link} to {@code bridge} and brings it up. */
    public static void attach(String link, String bridge) throws IOException {
        run("ip", "link", "set", link, "master", bridge);
        run("ip", "link", "set", link, "up");
    }

    public static void up(String link) throws IOException {
        run("ip", "link", "set", link, "up");
    }

    private static void run(String... cmd) throws IOException {
        Process p = new ProcessBuilder(List.of(cmd)).redirectErrorStream(true).start();
        try {
            if (!p.waitFor(10, TimeUnit.SECONDS)) {
                p.destroyForcibly();
                throw new IOException(String.join(" ", cmd) + ": timed out");
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IOException("interrupted", e);
        }
        if (p.exitValue() != 0) {
            throw new IOException(String.join(" ", cmd) + ": " + new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8).strip());
        }
    }
}
