package dev.colo.daemon.sim;

import dev.colo.checkpoint.link.proto.Envelope;
import dev.colo.daemon.config.DaemonConfig;
import dev.colo.daemon.events.DaemonEvent;
import dev.colo.daemon.events.EventJournal;
import dev.colo.daemon.metrics.DaemonMetrics;
import dev.colo.daemon.node.Node;
import dev.colo.daemon.node.NodePorts;
import dev.colo.daemon.node.Reachability;
import dev.colo.hypervisor.DomainRef;
import dev.colo.runtime.NodeIdentity;
import dev.colo.testkit.sim.SimRuntime;
import dev.colo.testkit.sim.SimWorld;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Random;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionStage;

/**
 * A whole protected pair in one seeded, virtual-time world (the model: TigerBeetle's VOPR): two
 * production {@link Node}s on simulated hosts (hypervisor, guest, NIC sockets), joined by a
 * simulated replication link, with clients and a witness on a simulated LAN. A run pairs the VM,
 * puts the clients to work, injects the faults its seed picks (at random instants and inside
 * checkpoint steps), heals, lets every client finish, and then checks the promise: no two nodes
 * ever released output in the same or an older term, every request a client got an answer for was
 * applied exactly once by the surviving VM, every byte a client received is what that VM sent on
 * that connection, no connection wedged, and UDP requests were applied no more often than sent.
 */
final class PairSimulation {
    static final String VM = "web1";
    static final int VM_HOST = 2;
    static final String WITNESS_IP = "10.0.0.1";
    static final long MS = 1_000_000L;

    /** What one seeded run did and found. */
    record Outcome(long seed, String faults, List<String> violations, long requests, long checkpoints, long virtualMs, long longestWaitMs,
            String survivor, String story) {
        boolean ok() {
            return violations.isEmpty();
        }
    }

    final long seed;
    final boolean reuseSvm;
    final SimWorld world;
    final Random rnd;
    final SimLan lan;
    final SimLink link;
    final ReleaseLog releases = new ReleaseLog();
    final SimHost hostA;
    final SimHost hostB;
    final List<SimClient> clients = new ArrayList<>();
    final List<String> faults = new ArrayList<>();
    final Map<String, EventJournal> journals = new LinkedHashMap<>();
    SimNode a;
    SimNode b;
    private final DaemonConfig cfgA;
    private final DaemonConfig cfgB;
    private long checkpointMessages;

    /** One node's process: its runtime, ports and the production Node. */
    final class SimNode {
        final String name;
        final DaemonConfig cfg;
        final SimHost host;
        final SimRuntime runtime;
        final SimLink.End end;
        final SimHost.NodeNetwork network;
        final EventJournal events;
        final Node node;

        SimNode(DaemonConfig cfg, SimHost host, int side) {
            this.name = cfg.node().name();
            this.cfg = cfg;
            this.host = host;
            String role = cfg.node().role() == DaemonConfig.Role.PRIMARY ? "primary" : "secondary";
            this.runtime = new SimRuntime(world, new NodeIdentity(name, VM, role));
            this.end = link.end(side, name, runtime.lane("link"));
            this.network = host.new NodeNetwork(name, runtime.lane("path"), releases, () -> runtime.identity().term());
            this.events = new EventJournal(2000, Map.of("node", name), world::wallMillis);
            journals.put(name + "#" + journals.size(), events);
            this.node = new Node(cfg, new NodePorts(runtime, host.hv, end, network, new SimReachability(this), host.disks, events,
                    new DaemonMetrics(VM)));
        }

        void start() {
            try {
                node.start();
            } catch (Exception e) {
                throw new IllegalStateException(name + " did not start: " + e, e);
            }
        }

        boolean alive() {
            return !runtime.crashed();
        }

        /** kill -9 of the daemon: its tasks stop, its sockets close, its VMs keep running. */
        void crash() {
            runtime.crash();
            link.died(end);
            network.die();
        }

        Map<String, Object> status() {
            try {
                return runtime.lane("control").call(() -> statusOf(node));
            } catch (Exception e) {
                throw new IllegalStateException(e);
            }
        }

        String state() {
            return alive() ? String.valueOf(status().get("state")) : "DEAD";
        }
    }

    private static Map<String, Object> statusOf(Node n) throws Exception {
        return new dev.colo.daemon.node.ControlFacade(n).status();
    }

    /** Evidence from the simulated network, as the production checks would see it. */
    final class SimReachability implements Reachability {
        private final SimNode self;

        SimReachability(SimNode self) {
            this.self = self;
        }

        private CompletionStage<Answer> after(long delayNs, Answer a) {
            CompletableFuture<Answer> f = new CompletableFuture<>();
            world.post(delayNs, () -> f.complete(a), null);
            return f;
        }

        @Override
        public CompletionStage<Answer> witness() {
            return after(MS, new Answer(true, 1, WITNESS_IP + " answered in 1 ms"));
        }

        @Override
        public CompletionStage<Answer> peerDaemon() {
            SimNode peer = self == a ? b : a;
            long timeout = 3 * self.cfg.witness().timeoutMs() * MS;
            if (link.partitioned()) {
                return after(timeout, new Answer(false, -1, "peer daemon silent (partition)"));
            }
            if (peer == null || !peer.alive()) {
                return after(MS, new Answer(false, -1, "peer daemon refused (no daemon)"));
            }
            return after(MS, new Answer(true, 1, "peer daemon accepted a connection in 1 ms"));
        }

        /** A real ICMP echo over the LAN from this node's host, three tries. */
        @Override
        public CompletionStage<Answer> vmAddress() {
            CompletableFuture<Answer> f = new CompletableFuture<>();
            int id = 1000 + rnd.nextInt(60_000);
            byte[] mac = SimPackets.mac(self == a ? 11 : 12);
            int ip = SimPackets.ip(self == a ? 11 : 12);
            SimLan.Port[] port = new SimLan.Port[1];
            port[0] = lan.attach("probe of " + self.name, fr -> {
                var v = new dev.colo.proxy.packet.PacketView().parse(fr.ethernet());
                if (v.protocol() == 1 && v.buffer().getUnsignedByte(v.l4Offset()) == 0 && v.buffer().getUnsignedShort(v.l4Offset() + 4) == id
                        && !f.isDone()) {
                    f.complete(new Answer(true, 1, "VM address answered"));
                }
                fr.release();
            });
            long timeout = self.cfg.witness().timeoutMs() * MS;
            for (int i = 0; i < 3; i++) {
                int seq = i;
                world.post(i * timeout, () -> {
                    if (!f.isDone()) {
                        port[0].send(SimPackets.icmpEcho(hostA.vmMac, mac, ip, hostA.vmIp, 8, id, seq));
                    }
                }, null);
            }
            world.post(3 * timeout, () -> {
                f.complete(new Answer(false, -1, "VM address silent for 3x" + timeout / MS + " ms"));
                lan.detach(port[0]);
            }, null);
            return f;
        }
    }

    PairSimulation(long seed) {
        this.seed = seed;
        this.world = new SimWorld(seed);
        SimTrace.world = world;
        this.rnd = world.random();
        this.lan = new SimLan(world);
        this.link = new SimLink(world);
        Map<String, Long> costs = Map.of("define", 2 * MS, "start", 400 * MS, "stop", MS, "cont", MS, "migrate", 5 * MS, "migrate-incoming",
                8 * MS, "map", MS, "save-devices", 2 * MS, "colo-stop", MS, "colo-load", 5 * MS);
        byte[] vmMac = SimPackets.mac(VM_HOST);
        int vmIp = SimPackets.ip(VM_HOST);
        this.hostA = new SimHost("host-a", world, lan, vmMac, vmIp, costs);
        this.hostB = new SimHost("host-b", world, lan, vmMac, vmIp, costs);
        // Three seeds in four reuse the SVM (the default); the fourth gives every checkpoint a fresh standby.
        this.reuseSvm = Math.floorMod(seed, 4) != 3;
        this.cfgA = config("host-a", DaemonConfig.Role.PRIMARY, "host-b", reuseSvm);
        this.cfgB = config("host-b", DaemonConfig.Role.SECONDARY, "host-a", reuseSvm);
        link.observer = m -> {
            if (m.getBodyCase() != Envelope.BodyCase.FRAMES && m.getBodyCase() != Envelope.BodyCase.HEARTBEAT) {
                checkpointMessages++;
                onLinkMessage(m);
            }
        };
    }

    static DaemonConfig config(String node, DaemonConfig.Role role, String peer, boolean reuseSvm) {
        Path none = Path.of("/nonexistent");
        return new DaemonConfig(new DaemonConfig.Node(node, role), new DaemonConfig.Peer(peer, new InetSocketAddress("10.0.0.12", 7450)),
                new DaemonConfig.Link(new InetSocketAddress("10.0.0.11", 7450), none, none, none, 50, 500),
                new DaemonConfig.Witness(WITNESS_IP, 100), none, Optional.empty(), new DaemonConfig.Libvirt("sim:///", Optional.empty(),
                        Optional.empty()),
                new DaemonConfig.Vm(VM, "tap0", Optional.empty(), SimPackets.ipText(SimPackets.ip(VM_HOST)), 7460, 3000, 10_000, "lz4", 2000,
                        false, reuseSvm, false), DaemonConfig.Disks.defaults());
    }

    /** The VM's data disk image on host A (what the operator's domain points at). */
    static final java.nio.file.Path DATA_IMAGE = java.nio.file.Path.of("/sim/images/" + VM + "-data.img");

    /**
     * The VM as the operator defined it. With {@code dataDisk}, its data disk is replicated (which
     * needs the SVM reused in place: QEMU's replication driver runs in COLO mode only).
     */
    static String domainXml(boolean dataDisk) {
        return "<domain type='qemu'><name>" + VM + "</name><memory unit='KiB'>512</memory><vcpu>1</vcpu><os><type>hvm</type></os>"
                + "<devices>" + (dataDisk ? "<disk type='file' device='disk'><driver name='qemu' type='raw'/><source file='" + DATA_IMAGE + "'/>"
                + "<target dev='" + SimGuest.DATA_DISK + "' bus='virtio'/><address type='pci' domain='0x0000' bus='0x00' slot='0x05' "
                + "function='0x0'/></disk>" : "")
                + "<interface type='network'><mac address='52:54:00:00:00:02'/><source network='lan'/></interface></devices></domain>";
    }

    // --- faults ---

    /** A fault that fires when the link carries a given checkpoint message (null: at a random instant). */
    private Envelope.BodyCase crashOn;
    private int crashOnCount;
    private Runnable crashAction;

    private void onLinkMessage(Envelope m) {
        if (crashOn != null && m.getBodyCase() == crashOn && --crashOnCount <= 0) {
            Envelope.BodyCase was = crashOn;
            crashOn = null;
            Runnable r = crashAction;
            faults.add("at " + was + " t=" + world.nowNs() / MS + "ms");
            world.post(0, r, null);
        }
    }

    private void at(long delayMs, String what, Runnable r) {
        world.post(delayMs * MS, () -> {
            faults.add(what + " t=" + world.nowNs() / MS + "ms");
            r.run();
        }, null);
    }

    void crashPrimaryHost() {
        if (a.alive()) {
            a.crash();
        }
        hostA.hv.list().stream().filter(d -> hostA.hv.state(d).isActive()).forEach(d -> hostA.hv.crash(d.name()));
    }

    void crashPvm() {
        hostA.hv.lookup(VM).filter(d -> hostA.hv.state(d).isActive()).ifPresent(d -> hostA.hv.crash(d.name()));
    }

    void crashSvm() {
        if (b.alive()) {
            Object svm = b.status().get("domain");
            if (svm != null) {
                hostB.hv.lookup(svm.toString()).filter(d -> hostB.hv.state(d).isActive()).ifPresent(d -> hostB.hv.crash(d.name()));
            }
        }
    }

    void restartSecondary(long afterMs) {
        b.crash();
        at(afterMs, "secondary daemon restarted", () -> {
            b = new SimNode(cfgB, hostB, 1);
            b.start();
        });
    }

    /** Picks this seed's faults. At most one of them kills the serving side. */
    private void scheduleFaults(long protectedAtMs) {
        int plan = rnd.nextInt(14);
        long t = 500 + rnd.nextInt(4000);
        switch (plan) {
            case 0 -> faults.add("none");
            case 1 -> at(t, "kill -9 PVM QEMU", this::crashPvm);
            case 2 -> at(t, "kill -9 primary daemon and PVM QEMU", this::crashPrimaryHost);
            case 3 -> at(t, "kill -9 primary daemon", () -> a.crash());
            case 4 -> at(t, "kill -9 SVM QEMU", this::crashSvm);
            case 5 -> at(t, "kill -9 secondary daemon, restart", () -> restartSecondary(500 + rnd.nextInt(3000)));
            case 6 -> at(t, "link reset", () -> link.cut("connection reset"));
            case 7 -> {
                long d = 300 + rnd.nextInt(6000);
                at(t, "link partition " + d + " ms", link::partition);
                at(t + d, "link healed", link::heal);
            }
            case 8 -> {
                at(t, "LAN loses 3% and reorders", () -> {
                    lan.lossPer10k = 300;
                    lan.reorderPer10k = 300;
                    lan.duplicatePer10k = 100;
                });
                at(t + 3000, "LAN clean again", () -> {
                    lan.lossPer10k = 0;
                    lan.reorderPer10k = 0;
                    lan.duplicatePer10k = 0;
                });
            }
            case 9, 10 -> {
                Envelope.BodyCase[] steps = {Envelope.BodyCase.CHECKPOINT_BEGIN, Envelope.BodyCase.PAGES, Envelope.BodyCase.DEVICE_STATE,
                        Envelope.BodyCase.CHECKPOINT_COMMIT, Envelope.BodyCase.CHECKPOINT_ACK, Envelope.BodyCase.CHECKPOINT_ABORT};
                crashOn = steps[rnd.nextInt(steps.length)];
                crashOnCount = 1 + rnd.nextInt(3);
                boolean host = plan == 9;
                faults.add("kill -9 " + (host ? "primary daemon and PVM QEMU" : "PVM QEMU") + " at the " + crashOnCount + ". " + crashOn);
                crashAction = host ? this::crashPrimaryHost : this::crashPvm;
            }
            case 11 -> at(t, "planned switchover", () -> a.runtime.lane("control").execute(() -> {
                try {
                    a.node.switchoverAsync().whenComplete((x, e) -> faults.add(e == null ? "switchover done t=" + world.nowNs() / MS + "ms"
                            : "switchover failed: " + e.getMessage()));
                } catch (Exception e) {
                    faults.add("switchover refused: " + e.getMessage());
                }
            }));
            case 12 -> {
                // The primary hears nothing from a secondary that still hears it: it must not serve
                // past the SVM while that secondary may still promote it when the primary dies.
                long d = 800 + rnd.nextInt(5000);
                at(t, "secondary-to-primary direction stalls", () -> link.stallFrom(1));
                at(t + d, "kill -9 primary daemon and PVM QEMU (" + d + " ms into the stall)", this::crashPrimaryHost);
                at(t + d + 3000, "link healed", link::heal);
            }
            default -> {
                long d = 1000 + rnd.nextInt(3000);
                at(t, "link partition " + d + " ms, then the primary host dies", link::partition);
                at(t + d, "kill -9 primary daemon and PVM QEMU (link still cut)", this::crashPrimaryHost);
                at(t + d + 2000, "link healed", link::heal);
            }
        }
        if (rnd.nextInt(4) == 0) {
            at(200 + rnd.nextInt(6000), "LAN jitter and duplicates", () -> {
                lan.reorderPer10k = 500;
                lan.duplicatePer10k = 300;
            });
        }
    }

    // --- a run ---

    Outcome run() {
        a = new SimNode(cfgA, hostA, 0);
        b = new SimNode(cfgB, hostB, 1);
        hostA.disks.createCopy(SimGuest.DATA_DISK, DATA_IMAGE, SimGuest.DISK_BYTES, "qemu");
        hostA.hv.define(domainXml(reuseSvm));
        b.start();
        a.start();
        world.runFor(300 * MS);
        CompletableFuture<?>[] paired = new CompletableFuture<?>[1];
        a.runtime.lane("control").execute(() -> paired[0] = a.node.pairAsync());
        boolean ok = world.runUntil(() -> paired[0] != null && paired[0].isDone(), 60_000 * MS);
        List<String> violations = new ArrayList<>();
        if (!ok || paired[0].isCompletedExceptionally()) {
            violations.add("pairing did not complete: " + (paired[0] == null ? "not started" : paired[0].handle((x, e) -> String.valueOf(e)).join()));
            return outcome(violations, null);
        }
        long protectedAt = world.nowNs() / MS;
        for (int i = 0; i < 3; i++) {
            SimClient c = new SimClient(world, lan, "c" + i, 100 + i, hostA.vmIp, hostA.vmMac, i == 0);
            clients.add(c);
            c.start();
        }
        scheduleFaults(protectedAt);
        world.runFor((8_000 + rnd.nextInt(6_000)) * MS);
        clients.forEach(SimClient::stop);
        if (link.partitioned()) {
            faults.add("link healed at the end");
            link.heal();
        }
        lan.lossPer10k = 0;
        lan.reorderPer10k = 0;
        lan.duplicatePer10k = 0;
        crashOn = null;
        boolean settled = world.runUntil(() -> clients.stream().allMatch(c -> c.unanswered() == 0), 60_000 * MS);
        String survivor = survivorNode();
        violations.addAll(releases.violations);
        for (SimClient c : clients) {
            violations.addAll(c.violations);
        }
        if (survivor != null) {
            if (!settled) {
                violations.add(clients.stream().mapToLong(SimClient::unanswered).sum() + " requests still unanswered 60 s after the faults ended"
                        + " (a wedged connection or a lost request)" + wedged());
            }
            violations.addAll(checkAgainstSurvivor(survivor));
        }
        return outcome(violations, survivor);
    }

    private String wedged() {
        StringBuilder b = new StringBuilder();
        for (SimClient c : clients) {
            for (SimClient.Request r : c.requests()) {
                if (r.answeredNs < 0) {
                    b.append("; ").append(r.id).append(" sent t=").append(r.sentNs / MS).append("ms port ").append(r.conn.tcp.localPort)
                            .append(r.ackedNs >= 0 ? " acked t=" + r.ackedNs / MS + "ms" : " not acked");
                }
            }
            for (SimClient.Datagram d : c.datagrams.values()) {
                if (d.answeredNs < 0) {
                    b.append("; udp ").append(d.id).append(" sent ").append(d.sends).append("x");
                }
            }
        }
        return b.length() > 600 ? b.substring(0, 600) + "..." : b.toString();
    }

    /** The node that serves the VM at the end, and its guest's domain; null when nobody does. */
    private String survivorNode() {
        for (SimNode n : new SimNode[] {a, b}) {
            if (n != null && n.alive()) {
                String st = n.state();
                if (st.equals("PROTECTED") || st.equals("UNPROTECTED") || st.equals("PAIRING") || st.equals("ACTIVE")) {
                    return n.name;
                }
            }
        }
        return null;
    }

    private List<String> checkAgainstSurvivor(String survivorName) {
        List<String> v = new ArrayList<>();
        SimNode n = survivorName.equals(a.name) ? a : b;
        Object domain = n.status().get("domain");
        SimGuest g = domain == null ? null : n.host.guest(domain.toString());
        if (g == null) {
            v.add("the survivor " + survivorName + " serves no running guest (domain " + domain + ")");
            return v;
        }
        Map<String, Integer> applied = new LinkedHashMap<>();
        for (String id : g.applied) {
            applied.merge(id, 1, Integer::sum);
        }
        for (SimClient c : clients) {
            for (SimClient.Request r : c.requests()) {
                int times = applied.getOrDefault(r.id, 0);
                if (r.response != null && times != 1) {
                    v.add("request " + r.id + " was answered (" + r.response + ") but the survivor applied it " + times + " times");
                }
                if (r.ackedNs >= 0 && r.response == null && times == 0 && r.conn.tcp.state == TcpEndpoint.State.ESTABLISHED) {
                    v.add("request " + r.id + " was acknowledged at t=" + r.ackedNs / MS + "ms and is unknown to the survivor");
                }
            }
            for (SimClient.Conn conn : c.allConns) {
                byte[] got = conn.tcp.received();
                if (got.length == 0) {
                    continue;
                }
                byte[] sent = g.sentOn(c.ip, conn.tcp.localPort);
                if (sent == null) {
                    v.add(c.name + " port " + conn.tcp.localPort + " received " + got.length + " bytes on a connection the survivor does not know");
                } else if (sent.length < got.length || !Arrays.equals(sent, 0, got.length, got, 0, got.length)) {
                    v.add(c.name + " port " + conn.tcp.localPort + " holds bytes the survivor never sent: got \"" + snippet(got, sent)
                            + "\"");
                }
            }
            for (SimClient.Datagram d : c.datagrams.values()) {
                int times = g.udpApplied.getOrDefault(d.id, 0);
                if (d.answeredNs >= 0 && times < 1) {
                    v.add("UDP request " + d.id + " was answered but the survivor never applied it");
                }
                if (times > d.sends) {
                    v.add("UDP request " + d.id + " sent " + d.sends + " times was applied " + times + " times");
                }
            }
        }
        if (reuseSvm) {
            v.addAll(checkDisk(n, domain.toString(), g));
        }
        return v.size() > 8 ? v.subList(0, 8) : v;
    }

    /**
     * The survivor's data disk must be exactly what its own state says it wrote: record i holds the
     * i-th request it applied, and nothing lies beyond the last one. A disk that got writes from
     * after its RAM's snapshot, or lost writes from before it, fails here.
     */
    private static List<String> checkDisk(SimNode n, String domain, SimGuest g) {
        byte[] disk = n.host.hv.guestDisk(domain, SimGuest.DATA_DISK);
        if (disk == null) {
            return List.of("the survivor's VM " + domain + " has no data disk");
        }
        int records = disk.length / SimGuest.RECORD;
        for (int i = 0; i < records; i++) {
            byte[] want = i < g.applied.size() ? SimGuest.record(g.applied.get(i)) : new byte[SimGuest.RECORD];
            if (!Arrays.equals(disk, i * SimGuest.RECORD, (i + 1) * SimGuest.RECORD, want, 0, SimGuest.RECORD)) {
                return List.of("the survivor's disk holds \"" + new String(disk, i * SimGuest.RECORD, SimGuest.RECORD,
                        StandardCharsets.US_ASCII).trim() + "\" as record " + i + ", its state says \"" + (i < g.applied.size()
                                ? g.applied.get(i) : "nothing") + "\" (" + g.applied.size() + " requests applied)");
            }
        }
        return List.of();
    }

    private static String snippet(byte[] got, byte[] sent) {
        int i = 0;
        while (i < got.length && i < sent.length && got[i] == sent[i]) {
            i++;
        }
        int from = Math.max(0, i - 20);
        return new String(got, from, Math.min(got.length, i + 40) - from, StandardCharsets.US_ASCII).replace("\n", "\\n") + "\" at byte " + i
                + ", survivor has \"" + new String(sent, from, Math.max(0, Math.min(sent.length, i + 40) - from), StandardCharsets.US_ASCII)
                .replace("\n", "\\n");
    }

    private Outcome outcome(List<String> violations, String survivor) {
        long requests = clients.stream().mapToLong(c -> c.requests().size() + c.datagrams.size()).sum();
        long worst = clients.stream().mapToLong(SimClient::longestWaitMs).max().orElse(0);
        return new Outcome(seed, String.join(", ", faults) + (reuseSvm ? "" : " [a fresh standby per checkpoint]"), violations, requests, checkpointMessages, world.nowNs() / MS, worst,
                survivor == null ? "none" : survivor, violations.isEmpty() ? "" : story());
    }

    /** Both nodes' operator events, in virtual time: what an operator would read. */
    String story() {
        StringBuilder s = new StringBuilder();
        for (Map.Entry<String, EventJournal> e : journals.entrySet()) {
            s.append("--- events of ").append(e.getKey()).append('\n');
            for (DaemonEvent ev : e.getValue().recent()) {
                s.append(String.format("  t=%6d ms %-22s %s %s%n", ev.timeMs() - 1_800_000_000_000L - 1_000L, ev.kind(), ev.message(), ev.fields()));
            }
        }
        s.append("--- releases by node and term: ").append(releases.byNode).append('\n');
        return s.toString();
    }

    DomainRef pvm() {
        return hostA.hv.lookup(VM).orElse(null);
    }
}
