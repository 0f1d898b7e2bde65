package dev.colo.daemon.sim;

import dev.colo.proxy.frame.Frame;
import dev.colo.proxy.packet.PacketView;
import dev.colo.testkit.sim.SimWorld;
import java.nio.charset.StandardCharsets;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;

/**
 * A client on the LAN that records everything the promise is about: for every request, when its
 * bytes were acknowledged by the service, and the response it got; for every connection, every
 * byte it received. It keeps connections alive for a few requests each, opens new ones (so some
 * open within the last checkpoint interval), mixes deterministic and random-token requests, and
 * optionally sends UDP requests, retrying each until answered.
 */
final class SimClient {
    /** One request and what became of it. */
    static final class Request {
        final String id;
        final String kind;
        final Conn conn;
        final long endOffset;
        final long sentNs;
        long ackedNs = -1;
        long answeredNs = -1;
        String response;

        Request(String id, String kind, Conn conn, long endOffset, long sentNs) {
            this.id = id;
            this.kind = kind;
            this.conn = conn;
            this.endOffset = endOffset;
            this.sentNs = sentNs;
        }
    }

    /** One TCP connection of this client. */
    final class Conn {
        final TcpEndpoint tcp;
        final ArrayDeque<Request> pending = new ArrayDeque<>();
        final List<Request> all = new ArrayList<>();
        int parsed;
        int requestsLeft;
        boolean closing;
        long closingSinceNs;

        Conn(TcpEndpoint tcp, int requests) {
            this.tcp = tcp;
            this.requestsLeft = requests;
        }
    }

    /** One UDP request. */
    static final class Datagram {
        final String id;
        int sends;
        long firstSentNs;
        long answeredNs = -1;

        Datagram(String id) {
            this.id = id;
        }
    }

    private final SimWorld world;
    private final Random rnd;
    final String name;
    final int ip;
    final byte[] mac;
    private final int vmIp;
    private final byte[] vmMac;
    private final boolean udp;
    private final SimLan.Port port;
    private final PacketView view = new PacketView();
    private final Map<Integer, Conn> conns = new HashMap<>();
    final List<Conn> allConns = new ArrayList<>();
    final Map<String, Datagram> datagrams = new LinkedHashMap<>();
    final List<String> violations = new ArrayList<>();
    private Conn current;
    private int nextPort = 40_000;
    private int nextRequest;
    private int nextDatagram;
    private Datagram waiting;
    private boolean running = true;

    SimClient(SimWorld world, SimLan lan, String name, int host, int vmIp, byte[] vmMac, boolean udp) {
        this.world = world;
        this.rnd = new Random(world.random().nextLong());
        this.name = name;
        this.ip = SimPackets.ip(host);
        this.mac = SimPackets.mac(host);
        this.vmIp = vmIp;
        this.vmMac = vmMac;
        this.udp = udp;
        this.port = lan.attach(name, this::onFrame);
    }

    void start() {
        world.post(rnd.nextInt(50_000_000), this::openConnection, null);
        tick();
        if (udp) {
            world.post(rnd.nextInt(100_000_000), this::sendDatagram, null);
        }
    }

    /** No new requests from now on; those in flight still finish. */
    void stop() {
        running = false;
    }

    private void send(Frame f) {
        port.send(f);
    }

    private void tick() {
        world.post(10_000_000L, () -> {
            long now = world.nowNs();
            for (Conn c : List.copyOf(conns.values())) {
                c.tcp.tick(now, this::send);
                if (c.closing && (c.tcp.closedCleanly() || now - c.closingSinceNs > 10_000_000_000L)) {
                    conns.remove(c.tcp.localPort);
                }
            }
            if (waiting != null && waiting.answeredNs < 0 && now - lastDatagramNs > 300_000_000L) {
                transmit(waiting);
            }
            tick();
        }, null);
    }

    private void openConnection() {
        if (!running) {
            return;
        }
        int lport = nextPort++;
        TcpEndpoint t = new TcpEndpoint(ip, lport, mac, vmIp, SimGuest.HTTP_PORT, vmMac);
        Conn c = new Conn(t, 2 + rnd.nextInt(8));
        conns.put(lport, c);
        allConns.add(c);
        current = c;
        t.connect(rnd.nextInt(1 << 30), world.nowNs(), this::send);
    }

    private void nextRequest(Conn c) {
        if (!running || c.closing || c.tcp.state != TcpEndpoint.State.ESTABLISHED || !c.pending.isEmpty()) {
            return;
        }
        if (c.requestsLeft-- <= 0) {
            c.closing = true;
            c.closingSinceNs = world.nowNs();
            c.tcp.close(world.nowNs(), this::send);
            world.post(rnd.nextInt(100_000_000), this::openConnection, null);
            return;
        }
        int k = rnd.nextInt(10);
        String kind = k < 4 ? "T" : k < 8 ? "D" : "L";
        String id = name + ":" + (++nextRequest);
        byte[] line = ("REQ " + name + " " + nextRequest + " " + kind + "\n").getBytes(StandardCharsets.US_ASCII);
        Request r = new Request(id, kind, c, c.tcp.written() + line.length, world.nowNs());
        c.pending.addLast(r);
        c.all.add(r);
        c.tcp.write(line, world.nowNs(), this::send);
    }

    private long lastDatagramNs;

    private void sendDatagram() {
        if (!running) {
            return;
        }
        Datagram d = new Datagram(name + ":" + (++nextDatagram));
        datagrams.put(d.id, d);
        waiting = d;
        d.firstSentNs = world.nowNs();
        transmit(d);
    }

    private void transmit(Datagram d) {
        d.sends++;
        lastDatagramNs = world.nowNs();
        String[] p = d.id.split(":");
        send(SimPackets.udp(vmMac, mac, ip, vmIp, 50_000, SimGuest.UDP_PORT, ("U " + p[0] + " " + p[1]).getBytes(StandardCharsets.US_ASCII)));
    }

    private void onFrame(Frame f) {
        try {
            PacketView v = view.parse(f.ethernet());
            if (v.classification().malformed() || v.etherType() != PacketView.ETHERTYPE_IPV4 || SimPackets.dstIp(v) != ip) {
                return;
            }
            long now = world.nowNs();
            switch (v.classification()) {
                case TCP -> {
                    Conn c = conns.get(v.dstPort());
                    if (c == null) {
                        return;
                    }
                    boolean wasEstablished = c.tcp.state == TcpEndpoint.State.ESTABLISHED;
                    boolean fresh = c.tcp.onSegment(v, now, this::send);
                    for (Request r : c.pending) {
                        if (r.ackedNs < 0 && c.tcp.acked() >= r.endOffset) {
                            r.ackedNs = now;
                        }
                    }
                    if (fresh) {
                        readResponses(c, now);
                    }
                    if (!wasEstablished && c.tcp.state == TcpEndpoint.State.ESTABLISHED) {
                        nextRequest(c);
                    }
                }
                case UDP -> {
                    String[] p = new String(SimPackets.payload(v), StandardCharsets.US_ASCII).split(" ");
                    if (p.length == 4 && p[0].equals("u")) {
                        Datagram d = datagrams.get(p[1] + ":" + p[2]);
                        if (d != null && d.answeredNs < 0) {
                            d.answeredNs = now;
                            if (d == waiting) {
                                waiting = null;
                                world.post(50_000_000L + rnd.nextInt(200_000_000), this::sendDatagram, null);
                            }
                        }
                    }
                }
                default -> {
                }
            }
        } finally {
            f.release();
        }
    }

    private void readResponses(Conn c, long now) {
        byte[] in = c.tcp.received();
        int nl;
        while ((nl = indexOf(in, c.parsed)) >= 0) {
            String line = new String(in, c.parsed, nl - c.parsed, StandardCharsets.US_ASCII);
            c.parsed = nl + 1;
            Request r = c.pending.pollFirst();
            if (r == null) {
                violations.add(name + " got a response nobody asked for on port " + c.tcp.localPort + ": " + line);
                continue;
            }
            String[] id = r.id.split(":");
            if (!line.startsWith("OK " + id[0] + " " + id[1] + " ")) {
                violations.add(name + " asked " + r.id + " and got: " + line);
            }
            r.response = line;
            r.answeredNs = now;
            world.post(rnd.nextInt(30_000_000), () -> nextRequest(c), null);
        }
    }

    private static int indexOf(byte[] a, int from) {
        for (int i = from; i < a.length; i++) {
            if (a[i] == '\n') {
                return i;
            }
        }
        return -1;
    }

    List<Request> requests() {
        List<Request> out = new ArrayList<>();
        for (Conn c : allConns) {
            out.addAll(c.all);
        }
        return out;
    }

    /** Requests sent but not answered yet. */
    long unanswered() {
        return requests().stream().filter(r -> r.answeredNs < 0).count()
                + datagrams.values().stream().filter(d -> d.answeredNs < 0).count();
    }

    /** The longest a request waited for its answer, in ms (unanswered ones count up to now). */
    long longestWaitMs() {
        long now = world.nowNs();
        long worst = 0;
        for (Request r : requests()) {
            worst = Math.max(worst, ((r.answeredNs < 0 ? now : r.answeredNs) - r.sentNs) / 1_000_000);
        }
        return worst;
    }
}
