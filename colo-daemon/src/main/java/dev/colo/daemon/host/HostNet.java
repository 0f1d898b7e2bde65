package dev.colo.daemon.host;

import dev.colo.host.posix.Command;
import java.io.IOException;
import java.time.Duration;
import java.util.Random;
import java.util.concurrent.ThreadLocalRandom;

/** Host network plumbing the daemon does with iproute2, as libvirt does for its own taps. */
public final class HostNet {
    private static final Duration T = Duration.ofSeconds(10);

    private HostNet() {}

    /**
     * Enslaves {@code link} to {@code bridge} and brings it up. The link first gets a
     * {@link #bridgePortMac} address: a Linux bridge without a fixed address takes the lowest of
     * its ports', so a tap with the kernel's random address could become the host's own address on
     * the bridge when the daemon starts, and change it again when the daemon dies. Neighbours that
     * cached the old one then reach nothing at the host's IP until they ask again: after a kill of
     * the primary daemon, the secondary's probe read the primary host as silent for a second where
     * it should have been refused at once.
     */
    public static void attach(String link, String bridge) throws IOException {
        run("ip", "link", "set", link, "address", bridgePortMac(ThreadLocalRandom.current()));
        run("ip", "link", "set", link, "master", bridge);
        run("ip", "link", "set", link, "up");
    }

    public static void up(String link) throws IOException {
        run("ip", "link", "set", link, "up");
    }

    /**
     * A locally administered unicast address whose first octet is 0xfe, the highest a unicast
     * address can start with, as libvirt gives its taps: the bridge keeps a lower port's address.
     * The tap's own address never appears on the wire: the daemon writes the VM's frames with the
     * VM's address.
     */
    static String bridgePortMac(Random random) {
        StringBuilder mac = new StringBuilder("fe");
        for (int i = 0; i < 5; i++) {
            mac.append(String.format(":%02x", random.nextInt(256)));
        }
        return mac.toString();
    }

    private static void run(String... cmd) throws IOException {
        Command.Result r = Command.run(T, cmd);
        if (!r.ok()) {
            throw new IOException(String.join(" ", cmd) + ": " + (r.out() + r.err()).strip());
        }
    }
}
