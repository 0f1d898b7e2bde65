package dev.colo.host.posix;

import com.sun.jna.LastErrorException;
import java.io.IOException;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.Callable;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicReference;

/**
 * A network namespace. Statically: run code inside one ({@link #call}, {@link #callIn}), which the
 * daemon does to open its VM sockets where QEMU runs. As an instance: a named namespace
 * ({@code ip netns}) that the lab creates, runs commands in, and always deletes on {@link #close()}.
 *
 * <p>A network namespace belongs to a thread, so code is run inside it on a fresh thread that ends
 * afterwards; sockets created there stay in that namespace for their whole life.
 */
public final class NetNamespace implements AutoCloseable {
    private static final AtomicInteger SEQ = new AtomicInteger();
    private static final Duration T = Duration.ofSeconds(20);

    private final String name;
    private final List<String> hostLinks = new ArrayList<>();

    private NetNamespace(String name) {
        this.name = name;
    }

    /** Creates {@code colo-<tag>-<pid>-<n>} with loopback up; {@link #close()} deletes it. */
    public static NetNamespace create(String tag) {
        String name = "colo-" + tag + "-" + ProcessHandle.current().pid() + "-" + SEQ.incrementAndGet();
        Command.run(T, "ip", "netns", "add", name).orThrow();
        NetNamespace ns = new NetNamespace(name);
        ns.exec("ip", "link", "set", "lo", "up").orThrow();
        return ns;
    }

    public String name() {
        return name;
    }

    /** Runs a command inside the namespace. */
    public Command.Result exec(String... command) {
        return exec(T, command);
    }

    public Command.Result exec(Duration timeout, String... command) {
        List<String> full = new ArrayList<>(List.of("ip", "netns", "exec", name));
        full.addAll(List.of(command));
        return Command.run(timeout, full);
    }

    /** Runs {@code body} on a thread inside this namespace. */
    public <T> T call(Callable<T> body) throws Exception {
        return call(name, body);
    }

    /** Moves a host link (e.g. a tap QEMU already holds) into this namespace, with an address. */
    public void adopt(String link, String cidr) {
        Command.run(T, "ip", "link", "set", link, "netns", name).orThrow();
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
            Command.run(T, "ip", "link", "del", l);
        }
        Command.run(T, "ip", "netns", "del", name);
    }

    @Override
    public String toString() {
        return name;
    }

    /** Runs {@code body} inside the named namespace ({@code /var/run/netns/NAME}). */
    public static <T> T call(String name, Callable<T> body) throws Exception {
        return callIn("/var/run/netns/" + name, body);
    }

    /** Like {@link #call} with a namespace file, e.g. {@code /proc/1/ns/net} for the host's. */
    public static <T> T callIn(String nsFile, Callable<T> body) throws Exception {
        String name = nsFile.startsWith("/var/run/netns/") ? nsFile.substring("/var/run/netns/".length()) : nsFile;
        AtomicReference<T> result = new AtomicReference<>();
        AtomicReference<Exception> failure = new AtomicReference<>();
        Thread t = new Thread(() -> {
            int fd;
            try {
                fd = Libc.INSTANCE.open(nsFile, Libc.O_CLOEXEC);
            } catch (LastErrorException e) {
                failure.set(new IOException("no network namespace " + name + ": " + Fd.describe(e), e));
                return;
            }
            try {
                Libc.INSTANCE.setns(fd, Libc.CLONE_NEWNET);
                result.set(body.call());
            } catch (LastErrorException e) {
                failure.set(new IOException("cannot enter network namespace " + name + ": " + Fd.describe(e), e));
            } catch (Exception e) {
                failure.set(e);
            } finally {
                Libc.INSTANCE.close(fd);
            }
        }, "netns-" + name);
        t.start();
        t.join();
        if (failure.get() != null) {
            throw failure.get();
        }
        return result.get();
    }
}
