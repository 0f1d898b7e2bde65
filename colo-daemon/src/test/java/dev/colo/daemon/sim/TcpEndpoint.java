package dev.colo.daemon.sim;

import dev.colo.proxy.frame.Frame;
import dev.colo.proxy.packet.PacketView;
import java.io.ByteArrayOutputStream;
import java.io.DataInputStream;
import java.io.DataOutputStream;
import java.io.IOException;
import java.util.Arrays;
import java.util.function.Consumer;

/**
 * One end of a simulated TCP connection, just enough of TCP for the promise to be checked: a
 * three-way handshake, in-order delivery (out-of-order segments are dropped and re-acked),
 * cumulative acknowledgements, go-back-N retransmission on a backing-off timer, and FIN. Segments
 * carry at most {@link SimPackets#MSS} bytes, so responses span several. Sequence numbers start
 * below 2^31 and streams stay short, so they never wrap.
 */
final class TcpEndpoint {
    enum State { SYN_SENT, SYN_RCVD, ESTABLISHED, CLOSED }

    private static final long RTO_NS = 200_000_000L;
    private static final long SYN_RTO_NS = 1_000_000_000L;
    private static final long MAX_RTO_NS = 4_000_000_000L;

    final int localIp;
    final int localPort;
    final int remoteIp;
    final int remotePort;
    final byte[] localMac;
    byte[] remoteMac;
    State state;
    long iss;
    long irs;
    /** Our stream: everything the application wrote, from the first byte. */
    private byte[] out = new byte[256];
    private int outLen;
    private long acked;
    private long sent;
    /** The most we ever sent (go-back-N rewinds {@code sent}, not this). */
    private long sentMax;
    private boolean closing;
    private boolean finSent;
    private boolean finEverSent;
    private boolean finAcked;
    /** Their stream, in order. */
    private final ByteArrayOutputStream in = new ByteArrayOutputStream();
    private boolean finReceived;
    private long rtoAtNs;
    private long rtoNs;
    private int retransmissions;

    TcpEndpoint(int localIp, int localPort, byte[] localMac, int remoteIp, int remotePort, byte[] remoteMac) {
        this.localIp = localIp;
        this.localPort = localPort;
        this.localMac = localMac;
        this.remoteIp = remoteIp;
        this.remotePort = remotePort;
        this.remoteMac = remoteMac;
    }

    /** Client: sends a SYN. */
    void connect(long isn, long nowNs, Consumer<Frame> wire) {
        iss = isn;
        state = State.SYN_SENT;
        rtoNs = SYN_RTO_NS;
        rtoAtNs = nowNs + rtoNs;
        wire.accept(segment(iss, 0, PacketView.TCP_SYN, 0, 0));
    }

    /** Server: a SYN arrived; answers with a SYN-ACK. */
    void accept(long isn, long clientIsn, long nowNs, Consumer<Frame> wire) {
        iss = isn;
        irs = clientIsn;
        state = State.SYN_RCVD;
        rtoNs = SYN_RTO_NS;
        rtoAtNs = nowNs + rtoNs;
        wire.accept(segment(iss, irs + 1, PacketView.TCP_SYN | PacketView.TCP_ACK, 0, 0));
    }

    long rcvNxt() {
        return irs + 1 + in.size() + (finReceived ? 1 : 0);
    }

    private long sndBase() {
        return iss + 1;
    }

    /** A segment for us. Returns true when new in-order data (or a FIN) arrived. */
    boolean onSegment(PacketView v, long nowNs, Consumer<Frame> wire) {
        int flags = v.tcpFlags();
        long seq = v.seq();
        long ack = v.ack();
        if ((flags & PacketView.TCP_RST) != 0) {
            state = State.CLOSED;
            return false;
        }
        if (state == State.SYN_SENT) {
            if ((flags & PacketView.TCP_SYN) != 0 && (flags & PacketView.TCP_ACK) != 0 && ack == iss + 1) {
                irs = seq;
                state = State.ESTABLISHED;
                rtoAtNs = 0;
                rtoNs = RTO_NS;
                wire.accept(segment(sndBase() + sent, rcvNxt(), PacketView.TCP_ACK, 0, 0));
                flush(nowNs, wire);
            }
            return false;
        }
        if ((flags & PacketView.TCP_SYN) != 0) {
            if (state == State.SYN_RCVD && seq == irs) {
                wire.accept(segment(iss, irs + 1, PacketView.TCP_SYN | PacketView.TCP_ACK, 0, 0)); // a retransmitted SYN
            } else if (state == State.ESTABLISHED) {
                wire.accept(segment(sndBase() + sent, rcvNxt(), PacketView.TCP_ACK, 0, 0));
            }
            return false;
        }
        if ((flags & PacketView.TCP_ACK) != 0) {
            if (state == State.SYN_RCVD) {
                if (ack != iss + 1) {
                    // As Linux does: an ACK that does not acknowledge our SYN-ACK is answered with a
                    // reset, and the half-open connection is gone.
                    wire.accept(SimPackets.tcp(remoteMac, localMac, localIp, remoteIp, localPort, remotePort, ack & 0xffffffffL, 0,
                            PacketView.TCP_RST, out, 0, 0));
                    state = State.CLOSED;
                    return false;
                }
                state = State.ESTABLISHED;
                rtoAtNs = 0;
                rtoNs = RTO_NS;
            }
            long a = ack - sndBase();
            long maxAck = sentMax + (finSent || finEverSent ? 1 : 0);
            if (a > maxAck) {
                // An acknowledgement of data we never sent: dropped, and our ACK repeated.
                wire.accept(segment(sndBase() + sent, rcvNxt(), PacketView.TCP_ACK, 0, 0));
                return false;
            }
            if (a > acked && a <= maxAck) {
                if ((finSent || finEverSent) && a == sentMax + 1 && sentMax == outLen) {
                    finAcked = true;
                    a = sentMax;
                }
                acked = Math.min(a, outLen);
                if (sent < acked) {
                    sent = acked;
                }
                rtoNs = RTO_NS;
                rtoAtNs = outstanding() ? nowNs + rtoNs : 0;
            } else if ((finSent || finEverSent) && a == outLen + 1) {
                finAcked = true;
                rtoAtNs = outstanding() ? nowNs + rtoNs : 0;
            }
        }
        if (state != State.ESTABLISHED) {
            return false;
        }
        boolean fresh = false;
        byte[] p = SimPackets.payload(v);
        boolean fin = (flags & PacketView.TCP_FIN) != 0;
        if (p.length > 0 || fin) {
            long expected = irs + 1 + in.size();
            if (!finReceived && seq <= expected && seq + p.length >= expected) {
                int skip = (int) (expected - seq);
                if (p.length > skip) {
                    in.write(p, skip, p.length - skip);
                    fresh = true;
                }
                if (fin && seq + p.length == irs + 1 + in.size()) {
                    finReceived = true;
                    fresh = true;
                }
            }
            wire.accept(segment(sndBase() + sent, rcvNxt(), PacketView.TCP_ACK, 0, 0));
        }
        flush(nowNs, wire);
        return fresh;
    }

    private boolean outstanding() {
        return acked < sentMax || (finEverSent && !finAcked) || state == State.SYN_SENT || state == State.SYN_RCVD;
    }

    /** The application writes bytes. */
    void write(byte[] data, long nowNs, Consumer<Frame> wire) {
        if (outLen + data.length > out.length) {
            out = Arrays.copyOf(out, Math.max(out.length * 2, outLen + data.length));
        }
        System.arraycopy(data, 0, out, outLen, data.length);
        outLen += data.length;
        flush(nowNs, wire);
    }

    void close(long nowNs, Consumer<Frame> wire) {
        closing = true;
        flush(nowNs, wire);
    }

    private void flush(long nowNs, Consumer<Frame> wire) {
        if (state != State.ESTABLISHED) {
            return;
        }
        while (sent < outLen) {
            int n = (int) Math.min(SimPackets.MSS, outLen - sent);
            wire.accept(segment(sndBase() + sent, rcvNxt(), PacketView.TCP_ACK | PacketView.TCP_PSH, (int) sent, n));
            sent += n;
            sentMax = Math.max(sentMax, sent);
            if (rtoAtNs == 0) {
                rtoAtNs = nowNs + rtoNs;
            }
        }
        if (closing && !finSent && sent == outLen) {
            finSent = true;
            finEverSent = true;
            wire.accept(segment(sndBase() + sent, rcvNxt(), PacketView.TCP_ACK | PacketView.TCP_FIN, 0, 0));
            if (rtoAtNs == 0) {
                rtoAtNs = nowNs + rtoNs;
            }
        }
    }

    /** Retransmits on timeout (go-back-N from the oldest unacknowledged byte). */
    void tick(long nowNs, Consumer<Frame> wire) {
        if (rtoAtNs == 0 || nowNs < rtoAtNs || state == State.CLOSED) {
            return;
        }
        retransmissions++;
        rtoNs = Math.min(MAX_RTO_NS, rtoNs * 2);
        rtoAtNs = nowNs + rtoNs;
        switch (state) {
            case SYN_SENT -> wire.accept(segment(iss, 0, PacketView.TCP_SYN, 0, 0));
            case SYN_RCVD -> wire.accept(segment(iss, irs + 1, PacketView.TCP_SYN | PacketView.TCP_ACK, 0, 0));
            default -> {
                sent = acked;
                if (finSent && !finAcked) {
                    finSent = false;
                }
                flush(nowNs, wire);
            }
        }
    }

    private Frame segment(long seq, long ack, int flags, int off, int len) {
        return SimPackets.tcp(remoteMac, localMac, localIp, remoteIp, localPort, remotePort, seq & 0xffffffffL, ack & 0xffffffffL, flags, out, off,
                len);
    }

    // --- what the application sees ---

    byte[] received() {
        return in.toByteArray();
    }

    int receivedLength() {
        return in.size();
    }

    boolean finReceived() {
        return finReceived;
    }

    /** Bytes of our stream the peer acknowledged. */
    long acked() {
        return acked;
    }

    int written() {
        return outLen;
    }

    byte[] writtenBytes() {
        return Arrays.copyOf(out, outLen);
    }

    int retransmissions() {
        return retransmissions;
    }

    boolean closedCleanly() {
        return finEverSent && finAcked && finReceived;
    }

    // --- the guest's RAM image ---

    void writeTo(DataOutputStream o) throws IOException {
        o.writeInt(localIp);
        o.writeInt(localPort);
        o.write(localMac);
        o.writeInt(remoteIp);
        o.writeInt(remotePort);
        o.write(remoteMac);
        o.writeByte(state.ordinal());
        o.writeLong(iss);
        o.writeLong(irs);
        o.writeInt(outLen);
        o.write(out, 0, outLen);
        o.writeLong(acked);
        o.writeLong(sent);
        o.writeLong(sentMax);
        o.writeBoolean(finEverSent);
        o.writeBoolean(closing);
        o.writeBoolean(finSent);
        o.writeBoolean(finAcked);
        byte[] r = in.toByteArray();
        o.writeInt(r.length);
        o.write(r);
        o.writeBoolean(finReceived);
        o.writeLong(rtoAtNs);
        o.writeLong(rtoNs);
    }

    static TcpEndpoint readFrom(DataInputStream i) throws IOException {
        int lip = i.readInt();
        int lport = i.readInt();
        byte[] lmac = i.readNBytes(6);
        int rip = i.readInt();
        int rport = i.readInt();
        byte[] rmac = i.readNBytes(6);
        TcpEndpoint t = new TcpEndpoint(lip, lport, lmac, rip, rport, rmac);
        t.state = State.values()[i.readByte()];
        t.iss = i.readLong();
        t.irs = i.readLong();
        t.outLen = i.readInt();
        t.out = Arrays.copyOf(i.readNBytes(t.outLen), Math.max(256, t.outLen));
        t.acked = i.readLong();
        t.sent = i.readLong();
        t.sentMax = i.readLong();
        t.finEverSent = i.readBoolean();
        t.closing = i.readBoolean();
        t.finSent = i.readBoolean();
        t.finAcked = i.readBoolean();
        t.in.write(i.readNBytes(i.readInt()));
        t.finReceived = i.readBoolean();
        t.rtoAtNs = i.readLong();
        t.rtoNs = i.readLong();
        return t;
    }
}
