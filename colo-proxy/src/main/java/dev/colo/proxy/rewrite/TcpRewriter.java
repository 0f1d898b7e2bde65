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
 * incrementally. {@link #onCheckpoint()} forgets everything (SVM = PVM again); a failover keeps
 * the table, because live connections still need their offsets. Pure; single-threaded.
 */
public final class TcpRewriter {
    private static final int MAX_CONNECTIONS = 65_536;

    /** Per SVM-to-client flow: the SVM's ISN until the offset is known, then the offset. */
    private static final class Conn {
        long svmIsn = -1;
        long offset;
        boolean known;
    }

    private final PacketView view = new PacketView();
    private final Map<FlowKey, Conn> conns = new LinkedHashMap<>(1024, 0.75f, true) {
        @Override
        protected boolean removeEldestEntry(Map.Entry<FlowKey, Conn> eldest) {
            return size() > MAX_CONNECTIONS;
        }
    };
    private long rewritten;

    /** A frame from the client side on its way into the SVM. Rewrites it in place. */
    public void intoSvm(ByteBuf ethernet) {
        if (view.parse(ethernet).classification() != Classification.TCP || !view.hasFlag(PacketView.TCP_ACK)) {
            return;
        }
        Conn c = conns.get(view.flowKey().reversed());
        if (c == null) {
            return;
        }
        if (!c.known) {
            if (c.svmIsn < 0) {
                return;
            }
            c.offset = (view.ack() - 1 - c.svmIsn) & 0xffffffffL;
            c.known = true;
        }
        if (c.offset == 0) {
            return;
        }
        int tcp = view.l4Offset();
        long oldAck = view.ack();
        long newAck = (oldAck - c.offset) & 0xffffffffL;
        int csum = ethernet.getUnsignedShort(tcp + 16);
        csum = Checksums.adjust32(csum, oldAck, newAck);
        ethernet.setInt(tcp + 8, (int) newAck);
        csum = shiftSackEdges(ethernet, tcp, -c.offset, csum);
        ethernet.setShort(tcp + 16, csum);
        rewritten++;
    }

    /** A frame the SVM sent, on its way to comparison (and, after failover, to the client). */
    public void outOfSvm(ByteBuf ethernet) {
        if (view.parse(ethernet).classification() != Classification.TCP) {
            return;
        }
        FlowKey key = view.flowKey();
        if (view.hasFlag(PacketView.TCP_SYN)) {
            Conn c = new Conn();
            c.svmIsn = view.seq();
            conns.put(key, c);
            return;
        }
        Conn c = conns.get(key);
        if (c == null || !c.known || c.offset == 0) {
            return;
        }
        int tcp = view.l4Offset();
        long oldSeq = view.seq();
        long newSeq = (oldSeq + c.offset) & 0xffffffffL;
        int csum = Checksums.adjust32(ethernet.getUnsignedShort(tcp + 16), oldSeq, newSeq);
        ethernet.setInt(tcp + 4, (int) newSeq);
        ethernet.setShort(tcp + 16, csum);
        if (view.hasFlag(PacketView.TCP_RST)) {
            conns.remove(key);
        }
        rewritten++;
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
}
