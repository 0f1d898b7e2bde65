package dev.colo.proxy.rewrite;

import dev.colo.proxy.packet.Checksums;
import dev.colo.proxy.packet.Classification;
import dev.colo.proxy.packet.FlowKey;
import dev.colo.proxy.packet.PacketView;
import io.netty.buffer.ByteBuf;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * Shifts the SVM's TCP sequence space onto the PVM's. The SVM picks its own ISN for connections that
 * start after the last checkpoint; clients only know the PVM's. The offset is learned from the first
 * client ACK after the SVM's SYN (it acknowledges the PVM's ISN + 1). Frames into the SVM get their
 * ack (and SACK edges) shifted down, frames out of it their seq shifted up; checksums are fixed
 * incrementally. TCP timestamps get the same treatment: the client's handshake ACK echoes the PVM's
 * TSval, so an SVM whose clock differs (booted apart, or drifted) would otherwise have its segments
 * dropped by the client's PAWS check after a failover. {@link #onCheckpoint()} forgets everything (SVM = PVM again); a failover keeps
 * the table, because live connections still need their offsets.
 *
 * <p>Only connections that need shifting stay in the table: one whose offsets turn out to be zero
 * is forgotten at once, and one that closed (RST, or FIN both ways) too. The bound never evicts a
 * live connection with an offset: past it, new connections are tracked no more (and counted), since
 * forgetting a live one would hang it after a failover. Pure; single-threaded.
 */
public final class TcpRewriter {
    private static final int MAX_CONNECTIONS = 65_536;

    /** Per SVM-to-client flow: the SVM's ISN (and SYN timestamp) until the offsets are known. */
    private static final class Conn {
        long svmIsn = -1;
        long svmSynTsVal = -1;
        long offset;
        long tsOffset;
        boolean known;
        boolean finFromSvm;
        boolean finFromClient;
    }

    private final PacketView view = new PacketView();
    private final Map<FlowKey, Conn> conns = new LinkedHashMap<>();
    private long rewritten;
    private long untracked;
    /**
     * Client SYNs this SVM got since its checkpoint. Only for these did it pick an ISN of its own;
     * a connection it holds from the checkpoint has the PVM's numbers, and its SYN-ACK (a
     * retransmission from the copied state) must not teach an offset: the next client ACK would then
     * be read as the PVM's ISN when it may acknowledge data, and the offset would be wrong.
     */
    private java.util.Set<FlowKey> freshSyns = new java.util.HashSet<>();
    /**
     * Client SYNs the SVM got before its last checkpoint. One of them may still have been unread in
     * the PVM's receive ring at the snapshot: the PVM's kernel answers it after the snapshot and so
     * does the SVM's copy, each with an ISN of its own (a kill 7 ms after such a checkpoint left
     * the survivor unable to take the client's ACK: connection reset). Their SYN-ACK teaches an
     * offset too, but only while no client ACK on that flow has reached this SVM: the PVM's
     * SYN-ACK leaves only after the SVM's arrived to match it, so the client's first ACK comes
     * after; a SYN-ACK the SVM repeats from copied state after the client's ACK is not a lesson.
     * So a flow leaves this set at the first client ACK that goes into this SVM.
     */
    private java.util.Set<FlowKey> previousSyns = new java.util.HashSet<>();

    /** A frame from the client side on its way into the SVM. Rewrites it in place. */
    public void intoSvm(ByteBuf ethernet) {
        if (view.parse(ethernet).classification() != Classification.TCP) {
            return;
        }
        if (view.hasFlag(PacketView.TCP_SYN) && !view.hasFlag(PacketView.TCP_ACK)) {
            if (freshSyns.size() < MAX_CONNECTIONS) {
                freshSyns.add(view.flowKey());
            }
            return;
        }
        if (!view.hasFlag(PacketView.TCP_ACK)) {
            return;
        }
        FlowKey client = view.flowKey(); // one key per frame: this runs for every client frame
        if (!previousSyns.isEmpty()) {
            previousSyns.remove(client);
        }
        Conn c = conns.get(client.reversed());
        if (c == null) {
            return;
        }
        int tcp = view.l4Offset();
        int ts = timestampOption(ethernet, tcp);
        if (!c.known) {
            if (c.svmIsn < 0) {
                return;
            }
            c.offset = (view.ack() - 1 - c.svmIsn) & 0xffffffffL;
            if (ts >= 0 && c.svmSynTsVal >= 0) {
                c.tsOffset = (ethernet.getUnsignedInt(ts + 6) - c.svmSynTsVal) & 0xffffffffL;
            }
            c.known = true;
            // Learned once: a SYN-ACK the SVM sends again for this connection (a duplicated SYN
            // made it) must not start a second lesson from an ACK that acknowledges data.
            freshSyns.remove(client);
            if (c.offset == 0 && c.tsOffset == 0) {
                conns.remove(client.reversed()); // nothing to shift on this connection, ever
                return;
            }
        }
        if (view.hasFlag(PacketView.TCP_FIN)) {
            c.finFromClient = true;
        }
        int csum = ethernet.getUnsignedShort(tcp + 16);
        if (c.offset != 0) {
            long oldAck = view.ack();
            long newAck = (oldAck - c.offset) & 0xffffffffL;
            csum = Checksums.adjust32(csum, oldAck, newAck);
            ethernet.setInt(tcp + 8, (int) newAck);
            csum = shiftSackEdges(ethernet, tcp, -c.offset, csum);
        }
        if (c.tsOffset != 0 && ts >= 0) {
            long oldEcr = ethernet.getUnsignedInt(ts + 6);
            long newEcr = (oldEcr - c.tsOffset) & 0xffffffffL;
            csum = Checksums.adjust32(csum, oldEcr, newEcr);
            ethernet.setInt(ts + 6, (int) newEcr);
        }
        ethernet.setShort(tcp + 16, csum);
        rewritten++;
    }

    /** A frame the SVM sent to the client (after failover): learns and rewrites. */
    public void outOfSvm(ByteBuf ethernet) {
        outOfSvm(ethernet, true);
    }

    /**
     * A frame the SVM sent. Always learns the SVM's ISNs; shifts seq only when {@code apply}. Output
     * on its way to comparison stays unshifted: the comparator lines streams up by each side's own
     * ISN, and after a checkpoint the SVM's numbers are the PVM's anyway.
     */
    public void outOfSvm(ByteBuf ethernet, boolean apply) {
        if (view.parse(ethernet).classification() != Classification.TCP) {
            return;
        }
        FlowKey key = view.flowKey();
        if (view.hasFlag(PacketView.TCP_SYN)) {
            FlowKey client = key.reversed();
            if (!freshSyns.contains(client) && !previousSyns.contains(client)) {
                return; // the SVM answers a SYN from before its checkpoint: its numbers are the PVM's
            }
            Conn known = conns.get(key);
            if (known != null && known.svmIsn == view.seq()) {
                return; // a retransmitted SYN: the offset learned for it still holds
            }
            if (known == null && conns.size() >= MAX_CONNECTIONS) {
                untracked++;
                return;
            }
            Conn c = new Conn();
            c.svmIsn = view.seq();
            int ts = timestampOption(ethernet, view.l4Offset());
            if (ts >= 0) {
                c.svmSynTsVal = ethernet.getUnsignedInt(ts + 2);
            }
            conns.put(key, c);
            return;
        }
        Conn c = conns.get(key);
        if (c == null || !c.known || (c.offset == 0 && c.tsOffset == 0) || !apply) {
            return;
        }
        int tcp = view.l4Offset();
        int csum = ethernet.getUnsignedShort(tcp + 16);
        if (c.offset != 0) {
            long oldSeq = view.seq();
            long newSeq = (oldSeq + c.offset) & 0xffffffffL;
            csum = Checksums.adjust32(csum, oldSeq, newSeq);
            ethernet.setInt(tcp + 4, (int) newSeq);
        }
        int ts = timestampOption(ethernet, tcp);
        if (c.tsOffset != 0 && ts >= 0) {
            long oldVal = ethernet.getUnsignedInt(ts + 2);
            long newVal = (oldVal + c.tsOffset) & 0xffffffffL;
            csum = Checksums.adjust32(csum, oldVal, newVal);
            ethernet.setInt(ts + 2, (int) newVal);
        }
        ethernet.setShort(tcp + 16, csum);
        if (view.hasFlag(PacketView.TCP_FIN)) {
            c.finFromSvm = true;
        }
        if (view.hasFlag(PacketView.TCP_RST) || (c.finFromSvm && c.finFromClient)) {
            conns.remove(key);
        }
        rewritten++;
    }

    /** Offset of the timestamp option (kind 8, length 10), or -1. */
    private static int timestampOption(ByteBuf b, int tcp) {
        int end = tcp + (b.getUnsignedByte(tcp + 12) >> 4) * 4;
        int p = tcp + 20;
        while (p < end) {
            int kind = b.getUnsignedByte(p);
            if (kind == 0) {
                return -1;
            }
            if (kind == 1) {
                p++;
                continue;
            }
            if (p + 1 >= end) {
                return -1;
            }
            int len = b.getUnsignedByte(p + 1);
            if (len < 2 || p + len > end) {
                return -1;
            }
            if (kind == 8 && len == 10) {
                return p;
            }
            p += len;
        }
        return -1;
    }

    private static int shiftSackEdges(ByteBuf b, int tcp, long delta, int csum) {
        int end = tcp + (b.getUnsignedByte(tcp + 12) >> 4) * 4;
        int p = tcp + 20;
        while (p < end) {
            int kind = b.getUnsignedByte(p);
            if (kind == 0) {
                break;
            }
            if (kind == 1) {
                p++;
                continue;
            }
            if (p + 1 >= end) {
                break;
            }
            int len = b.getUnsignedByte(p + 1);
            if (len < 2 || p + len > end) {
                break;
            }
            if (kind == 5) {
                for (int q = p + 2; q + 8 <= p + len; q += 4) {
                    long old = b.getUnsignedInt(q);
                    long now = (old + delta) & 0xffffffffL;
                    csum = Checksums.adjust32(csum, old, now);
                    b.setInt(q, (int) now);
                }
            }
            p += len;
        }
        return csum;
    }

    /** The SVM was just made identical to the PVM: no offsets any more. */
    public void onCheckpoint() {
        conns.clear();
        previousSyns = freshSyns;
        freshSyns = new java.util.HashSet<>();
    }

    public int connections() {
        return conns.size();
    }

    /** The offset for an SVM-to-client flow, or empty when not (yet) known. */
    public java.util.OptionalLong offset(FlowKey svmToClient) {
        Conn c = conns.get(svmToClient);
        return c != null && c.known ? java.util.OptionalLong.of(c.offset) : java.util.OptionalLong.empty();
    }

    public long rewritten() {
        return rewritten;
    }

    /** Connections not tracked because the table was full (each would hang after a failover). */
    public long untracked() {
        return untracked;
    }
}
