package dev.colo.testkit;

import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * A network namespace a test creates and always deletes, with a short unique name. Only addresses
 * inside such namespaces (or loopback) are ever used as test targets.
 */
public final class NetNs implements AutoCloseable {
    private static final AtomicInteger SEQ = new AtomicInteger();
    private static final Duration T = Duration.ofSeconds(20);

    private final String name;
    private final List<String> hostLinks = new ArrayList<>();

    private NetNs(String name) {
        this.name = name;
    }

    /** Creates {@code colo-<tag>-<pid>-<n>} with loopback up. */
    public static NetNs create(String tag) {
        String name = "colo-" + tag + "-" + ProcessHandle.current().pid() + "-" + SEQ.incrementAndGet();
        Shell.run(T, "ip", "netns", "add", name).orThrow();
        NetNs ns = new NetNs(name);
        ns.exec("ip", "link", "set", "lo", "up").orThrow();
        return ns;
    }

    public String name() {
        return name;
    }

    /** Runs a command inside the namespace. */
    public Shell.Result exec(String... command) {
        return exec(T, command);
    }

    public Shell.Result exec(Duration timeout, String... command) {
        List<String> full = new ArrayList<>(List.of("ip", "netns", "exec", name));
        full.addAll(List.of(command));
        return Shell.run(timeout, full);
    }

    /** Moves a host link (e.g. a tap QEMU already holds) into this namespace, with an address. */
    public void adopt(String link, String cidr) {
        Shell.run(T, "ip", "link", "set", link, "netns", name).orThrow();
        exec("ip", "addr", "add", cidr, "dev", link).orThrow();
        exec("ip", "link", "set", link, "up").orThrow();
    }

    /** Remembers a host-side link to delete on close, for links that stay outside. */
    public void ownHostLink(String link) {
        hostLinks.add(link);
    }

    @Override
    public void close() {
        for (String l : hostLinks) {
            Shell.run(T, "ip", "link", "del", l);
        }
        Shell.run(T, "ip", "netns", "del", name);
    }

    @Override
    public String toString() {
        return name;
    }
}
