package dev.colo.lab;

import dev.colo.checkpoint.link.PairCertificates;
import dev.colo.host.posix.Command;
import dev.colo.host.posix.NetNamespace;
import java.io.IOException;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;

/**
 * Two hosts and a client on one machine: a LAN bridge in the client's namespace (the client,
 * 10.201.0.1, is also the witness), and one namespace per host with its own bridge joined to the
 * LAN by a veth (host A 10.201.0.11, host B 10.201.0.12). Each host runs a real colo daemon process
 * (bin/colo daemon) whose tap joins its host bridge; QEMU runs in the machine's own namespace. The
 * pair's certificates are fresh. Everything is removed in {@link #close()}, also after a failure.
 */
public final class HostPairLab implements AutoCloseable {
    public static final String HOST_A_IP = "10.201.0.11";
    public static final String HOST_B_IP = "10.201.0.12";
    public static final int LINK_PORT = 7450;
    private static final Duration T = Duration.ofSeconds(20);

    public final LabLan lan;
    public final Host a;
    public final Host b;
    public final String domain;
    public final Path dir;
    private final List<Process> daemons = new ArrayList<>();
    /** The demo removes its files too; tests keep them (the daemons' logs) for a failure's story. */
    private volatile boolean deleteFilesOnClose;

    /** One host of the pair. */
    public static final class Host {
        public final String node;
        public final NetNamespace ns;
        public final String ip;
        public final Path config;
        public final Path socket;
        public final Path log;
        public Process daemon;

        Host(String node, NetNamespace ns, String ip, Path dir) {
            this.node = node;
            this.ns = ns;
            this.ip = ip;
            this.config = dir.resolve(node + ".conf");
            this.socket = dir.resolve("run-" + node).resolve("colo.sock");
            this.log = dir.resolve(node + ".log");
        }

        public String logText() {
            try {
                return Files.exists(log) ? Files.readString(log, StandardCharsets.UTF_8) : "";
            } catch (IOException e) {
                return "";
            }
        }
    }

    /** Which test guest a lab runs. */
    public enum Guest {
        /** The busybox guest: HTTP, CGI counter, echo, colo-svc; no disk. */
        BUSYBOX,
        /** The web + SQL guest ({@link AppGuest}): its PostgreSQL cluster on a replicated disk. */
        APP
    }

    /** Files QEMU opens that the lab made (the app guest's data disk, the disk copies): a directory QEMU's user can reach. */
    public final Path qemuDir;
    public final Guest guest;

    /** A lab for a test: its domain is colo-it-TAG-PID. */
    public HostPairLab(String tag) throws Exception {
        this("colo-it-" + tag + "-", tag);
    }

    /** @param domainPrefix the guest's domain name before the pid; leftovers with it are swept first */
    public HostPairLab(String domainPrefix, String tag) throws Exception {
        this(domainPrefix, tag, Guest.BUSYBOX);
    }

    public HostPairLab(String domainPrefix, String tag, Guest guest) throws Exception {
        Lab.require();
        this.guest = guest;
        long pid = ProcessHandle.current().pid() % 100000;
        domain = domainPrefix + ProcessHandle.current().pid();
        Lab.sweepStaleDomains(domainPrefix);
        dir = Files.createTempDirectory("colo-pair-" + tag);
        LabLan l = null;
        NetNamespace na = null;
        NetNamespace nb = null;
        try {
            l = LabLan.create(tag);
            na = NetNamespace.create(tag + "a");
            nb = NetNamespace.create(tag + "b");
            joinLan(l, na, "cv" + pid + "a", HOST_A_IP);
            joinLan(l, nb, "cv" + pid + "b", HOST_B_IP);
        } catch (RuntimeException e) {
            for (AutoCloseable c : new AutoCloseable[] {na, nb, l}) {
                if (c != null) {
                    c.close();
                }
            }
            throw e;
        }
        lan = l;
        a = new Host("host-a", na, HOST_A_IP, dir);
        b = new Host("host-b", nb, HOST_B_IP, dir);
        qemuDir = Lab.buildDir().resolve("lab").resolve(domain);
        try {
            PairCertificates.Ca ca = PairCertificates.newCa(domain, Duration.ofDays(1));
            PairCertificates.issue(ca, a.node, Duration.ofDays(1), dir.resolve("pki").resolve(a.node));
            PairCertificates.issue(ca, b.node, Duration.ofDays(1), dir.resolve("pki").resolve(b.node));
            Files.createDirectories(qemuDir);
            // Defined, not started: pairing turns it into a PVM and starts it.
            String xml;
            if (guest == Guest.APP) {
                AppGuest g = AppGuest.locate();
                xml = g.domainXml(domain, LabLan.GUEST_CIDR, TestGuest.tapNic("ct-unused", LabLan.GUEST_MAC),
                        g.copyDataDisk(qemuDir.resolve("data.qcow2")), "qcow2");
            } else {
                xml = TestGuest.locate().domainXml(domain, 128, LabLan.GUEST_CIDR, TestGuest.tapNic("ct-unused", LabLan.GUEST_MAC), false, null);
            }
            Command.Result r = Command.run(T, "virsh", "-c", "qemu:///system", "define", write("guest.xml", xml).toString());
            r.orThrow();
        } catch (Exception | Error e) {
            // No caller gets this lab to close: its namespaces and files go now (a libvirtd that
            // was down left three namespaces behind once).
            close();
            throw e;
        }
    }

    private static void joinLan(LabLan lan, NetNamespace host, String veth, String ip) {
        Command.run(T, "ip", "link", "add", veth, "type", "veth", "peer", "name", veth + "l").orThrow();
        Command.run(T, "ip", "link", "set", veth, "netns", host.name()).orThrow();
        Command.run(T, "ip", "link", "set", veth + "l", "netns", lan.ns().name()).orThrow();
        lan.ns().exec("ip", "link", "set", veth + "l", "master", "br0").orThrow();
        lan.ns().exec("ip", "link", "set", veth + "l", "up").orThrow();
        host.exec("ip", "link", "add", "br0", "type", "bridge", "stp_state", "0", "forward_delay", "0").orThrow();
        host.exec("ip", "link", "set", veth, "master", "br0").orThrow();
        host.exec("ip", "link", "set", veth, "up").orThrow();
        // A host's bridge carries its NIC's address for good (a bridge left to choose takes its
        // lowest port's, and changes it as VM taps come and go).
        String nicMac = host.exec("cat", "/sys/class/net/" + veth + "/address").orThrow().out().trim();
        host.exec("ip", "link", "set", "br0", "address", nicMac).orThrow();
        host.exec("ip", "addr", "add", ip + "/24", "dev", "br0").orThrow();
        host.exec("ip", "link", "set", "br0", "up").orThrow();
    }

    private Path write(String name, String text) throws IOException {
        Path p = dir.resolve(name);
        Files.writeString(p, text, StandardCharsets.UTF_8);
        return p;
    }

    /** Writes both configs; {@code extra} lines go into [vm] (e.g. timeouts). */
    public void writeConfigs(String... vmExtra) throws IOException {
        writeConfig(a, "primary", b, vmExtra);
        writeConfig(b, "secondary", a, vmExtra);
    }

    private void writeConfig(Host h, String role, Host peer, String... vmExtra) throws IOException {
        Path pki = dir.resolve("pki").resolve(h.node);
        String text = """
                # written by HostPairLab
                [node]
                name = %s
                role = %s

                [peer]
                name = %s
                link = %s:%d

                [link]
                listen = %s:%d
                certificate = %s
                key = %s
                ca = %s
                heartbeat-interval-ms = 50
                heartbeat-timeout-ms = 1000

                [witness]
                address = %s
                timeout-ms = 100

                [control]
                socket = %s

                [metrics]
                listen = 127.0.0.1:9467

                [libvirt]
                uri = qemu:///system
                accelerator = tcg
                vm-netns = /proc/%d/ns/net

                [disks]
                dir = %s
                nbd-dir = %s

                [vm]
                domain = %s
                tap = colo-%s
                bridge = br0
                ip = %s
                proxy-port = %d
                compare-timeout-ms = 3000
                max-interval-ms = 20000
                """.formatted(h.node, role, peer.node, peer.ip, LINK_PORT, h.ip, LINK_PORT, pki.resolve(h.node + ".crt"),
                pki.resolve(h.node + ".key"), pki.resolve("pair-ca.crt"), LabLan.CLIENT_IP, h.socket,
                // QEMU runs where this test runs (libvirtd's namespace), so the daemon's NIC sockets go there.
                ProcessHandle.current().pid(), qemuDir.resolve("disks-" + h.node), qemuDir.resolve("nbd-" + h.node), domain,
                h == a ? "a" : "b", LabLan.GUEST_IP, 17460 + (int) (ProcessHandle.current().pid() % 1000)) + String.join("\n", vmExtra) + "\n";
        Files.writeString(h.config, text, StandardCharsets.UTF_8);
    }

    /** Writes both configs ({@code vmExtra} into [vm]), starts the secondary's daemon, then the primary's, and waits until both are ready. */
    public void startDaemons(String... vmExtra) throws IOException, InterruptedException {
        writeConfigs(vmExtra);
        startDaemon(b);
        startDaemon(a);
        awaitReady(a, Duration.ofSeconds(60));
        awaitReady(b, Duration.ofSeconds(60));
    }

    /** Starts {@code bin/colo daemon} inside the host's namespace, as the systemd unit would. */
    public Process startDaemon(Host h) throws IOException {
        Path colo = Lab.repoRoot().resolve("bin").resolve("colo");
        Process p = new ProcessBuilder("ip", "netns", "exec", h.ns.name(), colo.toString(), "daemon", "--config", h.config.toString())
                .redirectErrorStream(true).redirectOutput(ProcessBuilder.Redirect.appendTo(h.log.toFile())).start();
        h.daemon = p;
        daemons.add(p);
        return p;
    }

    /** Opens a long-lived TCP connection from the client namespace to the guest's echo service. */
    public Socket openEcho() throws Exception {
        return lan.ns().call(() -> {
            Socket s = new Socket();
            s.connect(new InetSocketAddress(LabLan.GUEST_IP, 7), 10_000);
            s.setSoTimeout(30_000);
            return s;
        });
    }

    /** Waits until the daemon answers on its control socket. */
    public void awaitReady(Host h, Duration max) throws InterruptedException {
        long deadline = System.nanoTime() + max.toNanos();
        while (System.nanoTime() < deadline) {
            if (h.logText().contains("daemon ready")) {
                return;
            }
            if (h.daemon != null && !h.daemon.isAlive()) {
                throw new IllegalStateException(h.node + " daemon exited with " + h.daemon.exitValue() + ":\n" + h.logText());
            }
            Thread.sleep(100);
        }
        throw new IllegalStateException(h.node + " daemon not ready within " + max.toSeconds() + " s:\n" + h.logText());
    }

    /** The pid of a running domain's QEMU, from libvirt's pid file. */
    public static long qemuPid(String domainName) throws IOException {
        return Long.parseLong(Files.readString(Path.of("/run/libvirt/qemu/" + domainName + ".pid")).trim());
    }

    @Override
    public void close() {
        for (Process p : daemons) {
            if (p.isAlive()) {
                p.destroy(); // SIGTERM to ip netns exec, which execs the launcher and java: the daemon itself
                try {
                    if (!p.waitFor(30, TimeUnit.SECONDS)) {
                        p.destroyForcibly().waitFor(10, TimeUnit.SECONDS);
                    }
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                }
            }
        }
        Lab.sweepStaleDomains(domain);
        try (var files = Files.walk(qemuDir)) {
            files.sorted(java.util.Comparator.reverseOrder()).forEach(p -> p.toFile().delete());
        } catch (IOException e) {
            // best effort: build/lab is the lab's scratch space
        }
        a.ns.close();
        b.ns.close();
        lan.close();
        if (deleteFilesOnClose) {
            try (var files = Files.walk(dir)) {
                files.sorted(java.util.Comparator.reverseOrder()).forEach(p -> p.toFile().delete());
            } catch (IOException e) {
                // best effort: a leftover temp directory is harmless
            }
        }
    }

    public void deleteFilesOnClose() {
        deleteFilesOnClose = true;
    }
}
