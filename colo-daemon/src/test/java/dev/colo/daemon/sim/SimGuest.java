package dev.colo.daemon.sim;

import dev.colo.proxy.frame.Frame;
import dev.colo.proxy.packet.Classification;
import dev.colo.proxy.packet.PacketView;
import dev.colo.testkit.sim.SimWorld;
import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.DataInputStream;
import java.io.DataOutputStream;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.function.Consumer;

/**
 * The simulated VM: a small TCP/UDP server whose whole state (connections with their sequence
 * numbers and buffers, the application's records) lives in its RAM image, so a checkpoint carries
 * it to the SVM exactly as a real guest's kernel and application state travel in its pages.
 *
 * <p>The application: on TCP port 80 each line {@code REQ <client> <n> <kind>} is applied once
 * (appended to the records) and answered with {@code OK <client> <n> <index> <token>}; kind T
 * answers a random token (like a session id), D a fixed one, L a long deterministic body. On UDP
 * port 9, {@code U <client> <n>} is applied and answered. ICMP echo is answered. What makes two
 * copies of one state differ is what makes real VMs differ: each QEMU process has its own random
 * numbers (initial sequence numbers, tokens).
 *
 * <p>Frames written to it wait in its socket buffer until it reads them, which it does only while
 * it runs, a little after each arrives: at a pause the unread ones stay in the buffer, outside the
 * RAM image, and are read after the VM resumes. A frame read goes into the receive ring, in RAM,
 * and the stack takes it from there a little later (sometimes much later: a busy guest), so a
 * snapshot can hold input that neither copy has acted on yet; each acts on it after, in its own way
 * (a SYN gets a different ISN from each).
 */
final class SimGuest {
    static final int HTTP_PORT = 80;
    static final int UDP_PORT = 9;
    /** The guest's data disk: request i (from 0) is recorded at offset i * {@link #RECORD} before it is answered. */
    static final String DATA_DISK = "vdb";
    static final int RECORD = 32;
    static final int DISK_BYTES = 128 << 10;

    /** Writes the guest's data disk (a write completes before the guest goes on, as an fsync'd database's does). */
    interface DiskWriter {
        void write(long offset, byte[] data);
    }

    private final SimWorld world;
    final String domain;
    final byte[] mac;
    final int ip;
    private final Random rng;
    private final Consumer<Frame> toNic;
    private final DiskWriter disk;
    private final PacketView view = new PacketView();
    private final ArrayDeque<Frame> socket = new ArrayDeque<>();
    private boolean running;
    private boolean dead;
    private boolean readScheduled;
    private boolean processScheduled;
    private int runs;
    // --- the RAM image ---
    /** Frames read from the NIC that the stack has not processed yet (vnet header length, bytes). */
    private final ArrayDeque<RingEntry> ring = new ArrayDeque<>();
    private final Map<Long, TcpEndpoint> conns = new LinkedHashMap<>();
    private final Map<Long, Integer> consumed = new HashMap<>();
    /** Every request applied, in order, as "client:n". */
    final List<String> applied = new ArrayList<>();
    /** UDP requests applied, by "client:n". */
    final Map<String, Integer> udpApplied = new LinkedHashMap<>();

    SimGuest(SimWorld world, String domain, byte[] mac, int ip, long seed, Consumer<Frame> toNic, DiskWriter disk) {
        this.disk = disk;
        this.world = world;
        this.domain = domain;
        this.mac = mac;
        this.ip = ip;
        this.rng = new Random(seed);
        this.toNic = toNic;
    }

    private record RingEntry(int vnetHdrLen, byte[] bytes) {}

    static long key(int remoteIp, int remotePort) {
        return ((long) remoteIp << 16) | remotePort;
    }

    // --- the hypervisor's side ---

    void run() {
        running = true;
        runs++;
        scheduleRead();
        scheduleProcess();
        tick(runs);
    }

    void pause() {
        running = false;
    }

    void kill() {
        dead = true;
        running = false;
        socket.forEach(Frame::release);
        socket.clear();
        ring.clear();
    }

    boolean running() {
        return running;
    }

    /** A frame written into the VM's NIC: it waits in the socket buffer until the guest reads it. */
    void onNicFrame(Frame f) {
        if (dead) {
            f.release();
            return;
        }
        socket.addLast(f);
        scheduleRead();
    }

    int unread() {
        return socket.size();
    }

    /** What waits unread in the NIC socket: it stays in the socket when the process loads a checkpoint in place. */
    java.util.List<Frame> takeUnread() {
        java.util.List<Frame> out = new java.util.ArrayList<>(socket);
        socket.clear();
        return out;
    }

    private void scheduleRead() {
        if (!running || readScheduled || socket.isEmpty()) {
            return;
        }
        readScheduled = true;
        world.post(20_000 + rng.nextInt(200_000), () -> {
            readScheduled = false;
            if (!running) {
                return;
            }
            Frame f = socket.pollFirst();
            if (f != null) {
                byte[] bytes = new byte[f.data().readableBytes()];
                f.data().getBytes(f.data().readerIndex(), bytes);
                ring.addLast(new RingEntry(f.vnetHdrLen(), bytes));
                f.release();
                scheduleProcess();
            }
            scheduleRead();
        }, null);
    }

    /** The stack takes the next frame from the receive ring. */
    private void scheduleProcess() {
        if (!running || processScheduled || ring.isEmpty()) {
            return;
        }
        processScheduled = true;
        long delayNs = rng.nextInt(8) == 0 ? 1_000_000 + rng.nextInt(4_000_000) : 10_000 + rng.nextInt(150_000);
        world.post(delayNs, () -> {
            processScheduled = false;
            if (!running || ring.isEmpty()) {
                return;
            }
            RingEntry e = ring.pollFirst();
            Frame f = new Frame(io.netty.buffer.Unpooled.wrappedBuffer(e.bytes()), e.vnetHdrLen());
            try {
                onFrame(f);
            } finally {
                f.release();
            }
            scheduleProcess();
        }, null);
    }

    private void tick(int run) {
        world.post(50_000_000L, () -> {
            if (!running || run != runs) {
                return;
            }
            long now = world.nowNs();
            for (TcpEndpoint c : List.copyOf(conns.values())) {
                c.tick(now, toNic);
            }
            tick(run);
        }, null);
    }

    // --- the guest's network stack and application ---

    private void onFrame(Frame f) {
        PacketView v = view.parse(f.ethernet());
        if (v.classification().malformed() || v.etherType() != PacketView.ETHERTYPE_IPV4 || SimPackets.dstIp(v) != ip) {
            return;
        }
        long now = world.nowNs();
        byte[] srcMac = SimPackets.srcMac(f.ethernet());
        switch (v.classification()) {
            case TCP -> onTcp(v, srcMac, now);
            case UDP -> onUdp(v, srcMac);
            case ICMP -> {
                int type = v.buffer().getUnsignedByte(v.l4Offset());
                if (type == 8) {
                    int id = v.buffer().getUnsignedShort(v.l4Offset() + 4);
                    int seq = v.buffer().getUnsignedShort(v.l4Offset() + 6);
                    toNic.accept(SimPackets.icmpEcho(srcMac, mac, ip, SimPackets.srcIp(v), 0, id, seq));
                }
            }
            default -> {
            }
        }
    }

    private void onTcp(PacketView v, byte[] srcMac, long now) {
        if (v.dstPort() != HTTP_PORT) {
            return;
        }
        int rip = SimPackets.srcIp(v);
        int rport = v.srcPort();
        long k = key(rip, rport);
        TcpEndpoint c = conns.get(k);
        if (v.hasFlag(PacketView.TCP_SYN) && !v.hasFlag(PacketView.TCP_ACK)) {
            if (c == null || c.state == TcpEndpoint.State.CLOSED || (c.state != TcpEndpoint.State.SYN_RCVD && c.irs != v.seq())) {
                c = new TcpEndpoint(ip, HTTP_PORT, mac, rip, rport, srcMac);
                conns.put(k, c);
                consumed.put(k, 0);
                c.accept(rng.nextInt(1 << 30), v.seq(), now, toNic);
                return;
            }
        }
        if (c == null) {
            return; // a real stack would reset; the client's retransmissions show the hole instead
        }
        c.remoteMac = srcMac;
        if (c.onSegment(v, now, toNic)) {
            serve(k, c, now);
        }
    }

    /** The application: applies each complete request line once and answers it. */
    private void serve(long k, TcpEndpoint c, long now) {
        byte[] in = c.received();
        int from = consumed.get(k);
        int nl;
        while ((nl = indexOf(in, (byte) '\n', from)) >= 0) {
            String line = new String(in, from, nl - from, StandardCharsets.US_ASCII);
            from = nl + 1;
            String[] p = line.split(" ");
            if (p.length != 4 || !p[0].equals("REQ")) {
                continue;
            }
            String id = p[1] + ":" + p[2];
            applied.add(id);
            long at = (long) (applied.size() - 1) * RECORD;
            if (at + RECORD <= DISK_BYTES) {
                disk.write(at, record(id));
            }
            SimTrace.note(domain + " applies " + id + " (port " + c.remotePort + ")");
            String token = switch (p[3]) {
                case "T" -> Long.toHexString(rng.nextLong() & 0xffffffffffL);
                case "L" -> "L".repeat(300);
                default -> "d";
            };
            c.write(("OK " + p[1] + " " + p[2] + " " + applied.size() + " " + token + "\n").getBytes(StandardCharsets.US_ASCII), now, toNic);
        }
        consumed.put(k, from);
        if (c.finReceived()) {
            c.close(now, toNic);
        }
    }

    /** Request {@code id} as the disk holds it: its bytes, zero-padded to {@link #RECORD}. */
    static byte[] record(String id) {
        byte[] r = new byte[RECORD];
        byte[] b = id.getBytes(StandardCharsets.US_ASCII);
        System.arraycopy(b, 0, r, 0, Math.min(b.length, RECORD));
        return r;
    }

    private static int indexOf(byte[] a, byte b, int from) {
        for (int i = from; i < a.length; i++) {
            if (a[i] == b) {
                return i;
            }
        }
        return -1;
    }

    private void onUdp(PacketView v, byte[] srcMac) {
        if (v.dstPort() != UDP_PORT) {
            return;
        }
        String[] p = new String(SimPackets.payload(v), StandardCharsets.US_ASCII).split(" ");
        if (p.length != 3 || !p[0].equals("U")) {
            return;
        }
        String id = p[1] + ":" + p[2];
        udpApplied.merge(id, 1, Integer::sum);
        toNic.accept(SimPackets.udp(srcMac, mac, ip, SimPackets.srcIp(v), UDP_PORT, v.srcPort(),
                ("u " + p[1] + " " + p[2] + " " + udpApplied.size()).getBytes(StandardCharsets.US_ASCII)));
    }

    // --- what the checks read ---

    /** Everything the guest's application wrote on the connection from {@code clientIp:clientPort}, or null. */
    byte[] sentOn(int clientIp, int clientPort) {
        TcpEndpoint c = conns.get(key(clientIp, clientPort));
        return c == null ? null : c.writtenBytes();
    }

    int connections() {
        return conns.size();
    }

    // --- the RAM image ---

    byte[] image() {
        try {
            ByteArrayOutputStream b = new ByteArrayOutputStream();
            DataOutputStream o = new DataOutputStream(b);
            o.writeInt(conns.size());
            for (Map.Entry<Long, TcpEndpoint> e : conns.entrySet()) {
                o.writeLong(e.getKey());
                o.writeInt(consumed.getOrDefault(e.getKey(), 0));
                e.getValue().writeTo(o);
            }
            o.writeInt(applied.size());
            for (String a : applied) {
                o.writeUTF(a);
            }
            o.writeInt(udpApplied.size());
            for (Map.Entry<String, Integer> e : udpApplied.entrySet()) {
                o.writeUTF(e.getKey());
                o.writeInt(e.getValue());
            }
            o.writeInt(ring.size());
            for (RingEntry e : ring) {
                o.writeInt(e.vnetHdrLen());
                o.writeInt(e.bytes().length);
                o.write(e.bytes());
            }
            return b.toByteArray();
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    void restore(byte[] image) {
        try {
            DataInputStream i = new DataInputStream(new ByteArrayInputStream(image));
            int n = i.readInt();
            for (int k = 0; k < n; k++) {
                long key = i.readLong();
                consumed.put(key, i.readInt());
                conns.put(key, TcpEndpoint.readFrom(i));
            }
            int a = i.readInt();
            for (int k = 0; k < a; k++) {
                applied.add(i.readUTF());
            }
            int u = i.readInt();
            for (int k = 0; k < u; k++) {
                udpApplied.put(i.readUTF(), i.readInt());
            }
            int r = i.readInt();
            for (int k = 0; k < r; k++) {
                int vnet = i.readInt();
                byte[] bytes = new byte[i.readInt()];
                i.readFully(bytes);
                ring.addLast(new RingEntry(vnet, bytes));
            }
        } catch (IOException e) {
            throw new UncheckedIOException("guest image of " + domain + " unreadable", e);
        }
    }

    static boolean isTcp(Classification c) {
        return c == Classification.TCP;
    }
}
