package dev.colo.proxy.bench;

import dev.colo.proxy.Frames;
import dev.colo.proxy.packet.PacketView;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.Unpooled;
import java.io.BufferedInputStream;
import java.io.BufferedOutputStream;
import java.io.DataInputStream;
import java.io.DataOutputStream;
import java.io.IOException;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.Semaphore;
import java.util.concurrent.atomic.AtomicLong;
import org.HdrHistogram.Histogram;

/**
 * Drives any comparator that speaks colo-compare's sockets (ours or QEMU's) with the same frames:
 * {@code CONNS} TCP connections, {@code PAYLOAD}-byte segments, identical on both sides, sent
 * primary-then-secondary with at most {@code WINDOW} frames in flight. Prints one result line:
 * released frames per second, hold time p50/p99 (primary sent to released frame read back) and
 * the comparator process's CPU seconds.
 *
 * <p>Usage: CompareBench NAME PID PRI_PORT SEC_PORT OUT_PORT NOTIFY_PORT FRAMES [CONNS PAYLOAD WINDOW]
 */
public final class CompareBench {
    public static void main(String[] a) throws Exception {
        String name = a[0];
        long pid = Long.parseLong(a[1]);
        int pri = Integer.parseInt(a[2]);
        int sec = Integer.parseInt(a[3]);
        int out = Integer.parseInt(a[4]);
        int notify = Integer.parseInt(a[5]);
        int frames = Integer.parseInt(a[6]);
        int conns = a.length > 7 ? Integer.parseInt(a[7]) : 100;
        int payload = a.length > 8 ? Integer.parseInt(a[8]) : 1400;
        int window = a.length > 9 ? Integer.parseInt(a[9]) : 512;
        System.out.println(run(name, pid, pri, sec, out, notify, frames, conns, payload, window));
    }

    static DataOutputStream writer(Socket s) throws IOException {
        s.setTcpNoDelay(true);
        return new DataOutputStream(new BufferedOutputStream(s.getOutputStream(), 1 << 16));
    }

    static Socket connect(int port) throws IOException, InterruptedException {
        for (int i = 0; ; i++) {
            try {
                Socket s = new Socket();
                s.connect(new InetSocketAddress("127.0.0.1", port), 1000);
                return s;
            } catch (IOException e) {
                if (i > 100) {
                    throw e;
                }
                Thread.sleep(50);
            }
        }
    }

    static void frame(DataOutputStream o, byte[] f) throws IOException {
        o.writeInt(f.length);
        o.write(f);
    }

    static byte[] bytes(ByteBuf b) {
        byte[] out = new byte[b.readableBytes()];
        b.getBytes(0, out);
        b.release();
        return out;
    }

    static byte[] tcp(int port, long seq, int flags, byte[] payload) {
        return bytes(Frames.tcpBuf(Frames.VM_IP, Frames.CLIENT_IP, 80, port, seq, 1001, flags, payload, Frames.VM_MAC, Frames.CLIENT_MAC));
    }

    static String run(String name, long pid, int priPort, int secPort, int outPort, int notifyPort, int frames, int conns,
            int payloadLen, int window) throws Exception {
        Socket priS = connect(priPort);
        Socket secS = connect(secPort);
        Socket outS = connect(outPort);
        Socket notS = connect(notifyPort);
        DataOutputStream not = writer(notS);
        frame(not, "COLO_USERSPACE_PROXY_INIT".getBytes(StandardCharsets.US_ASCII));
        not.flush();
        DataInputStream notIn = new DataInputStream(notS.getInputStream());
        notS.setSoTimeout(5000);
        byte[] hello = new byte[notIn.readInt()];
        notIn.readFully(hello);
        notS.setSoTimeout(0);

        DataOutputStream p = writer(priS);
        DataOutputStream s = writer(secS);
        DataInputStream o = new DataInputStream(new BufferedInputStream(outS.getInputStream(), 1 << 16));

        // Handshakes first (not measured), so both comparators see connections they can track.
        for (int c = 0; c < conns; c++) {
            frame(p, tcp(20000 + c, 1000, PacketView.TCP_SYN | PacketView.TCP_ACK, new byte[0]));
            frame(s, tcp(20000 + c, 1000, PacketView.TCP_SYN | PacketView.TCP_ACK, new byte[0]));
        }
        p.flush();
        s.flush();
        for (int c = 0; c < conns; c++) {
            o.readFully(new byte[o.readInt()]);
        }

        byte[] body = Frames.bytes(payloadLen, 42);
        // Prebuilt frames: the driver must not be the bottleneck.
        byte[][] prebuilt = new byte[frames][];
        for (int i = 0; i < frames; i++) {
            prebuilt[i] = tcp(20000 + i % conns, 1001 + (long) (i / conns) * payloadLen, PacketView.TCP_ACK, body);
        }
        long[] sentAt = new long[frames];
        Histogram hold = new Histogram(3_600_000_000_000L, 3);
        Semaphore inFlight = new Semaphore(window);
        AtomicLong received = new AtomicLong();
        Thread reader = new Thread(() -> {
            try {
                PacketView v = new PacketView();
                byte[] buf = new byte[65536];
                while (received.get() < frames) {
                    int len = o.readInt();
                    o.readFully(buf, 0, len);
                    long now = System.nanoTime();
                    v.parse(Unpooled.wrappedBuffer(buf, 0, len));
                    int idx = (int) ((v.seq() - 1001) / payloadLen) * conns + (v.dstPort() - 20000);
                    if (idx >= 0 && idx < frames) {
                        hold.recordValue(Math.max(0, now - sentAt[idx]));
                    }
                    received.incrementAndGet();
                    inFlight.release();
                }
            } catch (IOException e) {
                System.err.println(name + ": outdev closed after " + received.get() + " frames: " + e);
            }
        }, "bench-reader");
        reader.start();

        long cpu0 = cpuTicks(pid);
        long t0 = System.nanoTime();
        for (int i = 0; i < frames; i++) {
            byte[] f = prebuilt[i];
            inFlight.acquire();
            sentAt[i] = System.nanoTime();
            frame(p, f);
            frame(s, f);
            if (inFlight.availablePermits() == 0 || i == frames - 1 || (i & 15) == 15) {
                p.flush();
                s.flush();
            }
        }
        reader.join(120_000);
        long elapsed = System.nanoTime() - t0;
        long cpu1 = cpuTicks(pid);
        double cpuSeconds = (cpu1 - cpu0) / 100.0;
        for (Socket x : new Socket[] {priS, secS, outS, notS}) {
            x.close();
        }
        double fps = received.get() / (elapsed / 1e9);
        return String.format("%-22s frames=%d released=%d  %,.0f frames/s  %,.1f MB/s  hold p50=%.3f ms p99=%.3f ms  cpu=%.2f s (%.1f us/frame)",
                name, frames, received.get(), fps, fps * (payloadLen + 66) / 1e6, hold.getValueAtPercentile(50) / 1e6,
                hold.getValueAtPercentile(99) / 1e6, cpuSeconds, cpuSeconds * 1e6 / Math.max(1, received.get()));
    }

    /** utime + stime of a process, in clock ticks (100 per second on Linux). */
    static long cpuTicks(long pid) throws IOException {
        if (pid <= 0) {
            return 0;
        }
        String stat = Files.readString(Path.of("/proc/" + pid + "/stat"));
        String[] f = stat.substring(stat.lastIndexOf(')') + 2).split(" ");
        return Long.parseLong(f[11]) + Long.parseLong(f[12]);
    }
}
