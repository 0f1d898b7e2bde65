package dev.colo.lab;

import dev.colo.host.posix.Command;
import dev.colo.host.posix.NetNamespace;

import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * A client LAN for one VM: a network namespace with a bridge {@code br0} that holds the client's
 * address and a fixed MAC. The fixed MAC matters: a restored standby keeps the ARP entries it learned
 * as the primary, so every LAN peer must look the same to both (DESIGN.md §7).
 */
public final class LabLan implements AutoCloseable {
    public static final String CLIENT_MAC = "02:c0:10:00:00:01";
    public static final String CLIENT_IP = "10.201.0.1";
    public static final String GUEST_IP = "10.201.0.2";
    public static final String GUEST_CIDR = GUEST_IP + "/24";
    public static final String GUEST_MAC = "52:54:00:c0:10:02";
    private static final AtomicInteger TAPS = new AtomicInteger();
    private static final Duration T = Duration.ofSeconds(20);

    private final NetNamespace ns;
    private final List<String> taps = new ArrayList<>();

    private LabLan(NetNamespace ns) {
        this.ns = ns;
    }

    public static LabLan create(String tag) {
        NetNamespace ns = NetNamespace.create(tag);
        try {
            ns.exec("ip", "link", "add", "br0", "type", "bridge", "stp_state", "0", "forward_delay", "0").orThrow();
            ns.exec("ip", "link", "set", "br0", "address", CLIENT_MAC).orThrow();
            ns.exec("ip", "addr", "add", CLIENT_IP + "/24", "dev", "br0").orThrow();
            ns.exec("ip", "link", "set", "br0", "up").orThrow();
            return new LabLan(ns);
        } catch (RuntimeException e) {
            ns.close();
            throw e;
        }
    }

    public NetNamespace ns() {
        return ns;
    }

    /** A new persistent tap in the host namespace, for libvirt to hand to QEMU before we plug it. */
    public static String newHostTap() {
        String name = "ct" + (ProcessHandle.current().pid() % 100000) + "x" + TAPS.incrementAndGet();
        Command.run(T, "ip", "tuntap", "add", "dev", name, "mode", "tap").orThrow();
        return name;
    }

    /** Moves a host tap (already opened by QEMU) into this LAN's bridge. */
    public void plug(String tap) {
        Command.run(T, "ip", "link", "set", tap, "netns", ns.name()).orThrow();
        taps.add(tap);
        ns.exec("ip", "link", "set", tap, "master", "br0").orThrow();
        ns.exec("ip", "link", "set", tap, "up").orThrow();
    }

    /** Removes a tap from the LAN (e.g. after its VM is gone). */
    public void unplug(String tap) {
        ns.exec("ip", "link", "del", tap);
        taps.remove(tap);
    }

    /** Deletes a tap still in the host namespace (created but never plugged). */
    public static void deleteHostTap(String tap) {
        Command.run(T, "ip", "link", "del", tap);
    }

    /** One HTTP GET from the client side; null when nothing answered in time. */
    public String httpGet(String path, Duration timeout) {
        Command.Result r = ns.exec(timeout.plusSeconds(2), "curl", "-s", "-m", Long.toString(Math.max(1, timeout.toSeconds())),
                "http://" + GUEST_IP + path);
        return r.ok() ? r.out() : null;
    }

    /** One HTTP GET timed by curl itself (not the process start): seconds, or -1 when nothing answered in time. */
    public double httpGetSeconds(String path, Duration timeout) {
        Command.Result r = ns.exec(timeout.plusSeconds(2), "curl", "-s", "-o", "/dev/null", "-w", "%{time_total}", "-m",
                Long.toString(Math.max(1, timeout.toSeconds())), "http://" + GUEST_IP + path);
        return r.ok() ? Double.parseDouble(r.out().trim()) : -1;
    }

    /** GET /cgi-bin/counter and parse {@code count=N}; -1 when there was no answer. */
    public int counter(Duration timeout) {
        String body = httpGet("/cgi-bin/counter", timeout);
        if (body == null) {
            return -1;
        }
        String s = body.trim();
        if (!s.startsWith("count=")) {
            throw new IllegalStateException("unexpected counter body: " + s);
        }
        return Integer.parseInt(s.substring(6).trim());
    }

    /**
     * Waits until the guest serves HTTP, then reads the counter once. It polls the static page, not
     * the counter: a counter request that times out on the client can still finish in the guest
     * later and increment behind the test's back.
     */
    public int awaitCounter(Duration max) {
        return awaitCounter(max, "/index.html");
    }

    /**
     * Like {@link #awaitCounter(Duration)} with another readiness page: where no checkpoint can
     * reconcile two independently booted guests, probe a page without a Date header
     * ({@code /cgi-bin/counter?peek}).
     */
    public int awaitCounter(Duration max, String readinessPath) {
        long deadline = System.nanoTime() + max.toNanos();
        while (System.nanoTime() < deadline) {
            if (httpGet(readinessPath, Duration.ofSeconds(1)) != null) {
                int c = counter(Duration.ofSeconds(15));
                if (c >= 0) {
                    return c;
                }
            }
        }
        throw new IllegalStateException("guest at " + GUEST_IP + " did not answer HTTP within " + max.toSeconds() + " s");
    }

    @Override
    public void close() {
        for (String t : List.copyOf(taps)) {
            unplug(t);
        }
        ns.close();
    }
}
