package dev.colo.daemon.host;

import dev.colo.host.posix.Command;
import java.io.IOException;
import java.time.Duration;

/** Host network plumbing the daemon does with iproute2, as libvirt does for its own taps. */
public final class HostNet {
    private static final Duration T = Duration.ofSeconds(10);

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
        Command.Result r = Command.run(T, cmd);
        if (!r.ok()) {
            throw new IOException(String.join(" ", cmd) + ": " + (r.out() + r.err()).strip());
        }
    }
}
