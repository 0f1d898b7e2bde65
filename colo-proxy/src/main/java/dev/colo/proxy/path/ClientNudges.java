package dev.colo.proxy.path;

import dev.colo.proxy.frame.Frame;
import dev.colo.proxy.packet.Checksums;
import dev.colo.proxy.packet.Classification;
import dev.colo.proxy.packet.FlowKey;
import dev.colo.proxy.packet.PacketView;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.Unpooled;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * After a promotion, a nudge to each client the SVM talked to since its last checkpoint: the SVM's
 * pure ACK, {@link #COPIES} times over. A client whose request was lost while nobody served (the PVM
 * dead, the SVM not yet on the LAN) sends it again only when its retransmission timer fires, and on
 * a pair that holds output for comparison that timer has often backed off to a second or more;
 * three duplicate ACKs make it retransmit at once (fast retransmit, RFC 5681). The first may count
 * as a window update, hence one more. They say only what the SVM has: its own last acknowledgement
 * and window, at the sequence number it sends next, so a client with nothing outstanding ignores
 * them. No TCP options: an old timestamp would fail the client's PAWS check, and Linux accepts a
 * segment without one. Connections the SVM only answered a SYN on are left alone (a client still in
 * SYN-SENT would take the ACK for a bad one).
 *
 * <p>Kept in the SVM's own sequence space (shifted at promotion like all its output), forgotten at
 * each new SVM, bounded by {@link #MAX_FLOWS}. Pure; single-threaded.
 */
public final class ClientNudges {
    static final int COPIES = 4;
    static final int MAX_FLOWS = 65_536;
    private static final int TCP_HEADER = 20;

    /** The SVM's last segment on a flow: its Ethernet and IP headers and the TCP numbers of a pure ACK after it. */
    private record Last(byte[] headers, int vnetHdrLen, int ipOffset, int tcpOffset, long nextSeq, long ack, int window) {}

    private final PacketView view = new PacketView();
    private final LinkedHashMap<FlowKey, Last> byFlow = new LinkedHashMap<>(16, 0.75f, true) {
        @Override
        protected boolean removeEldestEntry(Map.Entry<FlowKey, Last> eldest) {
            return size() > MAX_FLOWS;
        }
    };

    /** A frame the running SVM sent (before it is shifted). */
    public void onSvmOutput(Frame frame) {
        if (view.parse(frame.ethernet()).classification() != Classification.TCP || view.ipVersion() != 4) {
            return;
        }
        FlowKey flow = view.flowKey();
        if (view.hasFlag(PacketView.TCP_RST) || view.hasFlag(PacketView.TCP_FIN)) {
            byFlow.remove(flow);
            return;
        }
        if (view.hasFlag(PacketView.TCP_SYN) || !view.hasFlag(PacketView.TCP_ACK)) {
            return;
        }
        ByteBuf e = frame.ethernet();
        int start = view.frameStart();
        int tcp = view.l4Offset() - start;
        byte[] headers = new byte[frame.vnetHdrLen() + tcp + TCP_HEADER];
        // The vnet header stays zero: a 54-byte ACK needs no offload.
        e.getBytes(start, headers, frame.vnetHdrLen(), tcp + TCP_HEADER);
        long next = (view.seq() + view.payloadLength()) & 0xffffffffL;
        byFlow.put(flow, new Last(headers, frame.vnetHdrLen(), view.l3Offset() - start, tcp, next, view.ack(),
                e.getUnsignedShort(view.l4Offset() + 14)));
    }

    /** A frame from a client on its way into the SVM: a client that closes or resets its connection needs no nudge. */
    public void onClientInput(Frame frame) {
        if (view.parse(frame.ethernet()).classification() == Classification.TCP
                && (view.hasFlag(PacketView.TCP_RST) || view.hasFlag(PacketView.TCP_FIN))) {
            byFlow.remove(view.flowKey().reversed());
        }
    }

    /** A new SVM runs: what the old one said on its connections is not its to say. */
    public void clear() {
        byFlow.clear();
    }

    public int connections() {
        return byFlow.size();
    }

    /** The nudges: {@link #COPIES} pure ACKs per connection, in the SVM's sequence space. Forgets them all. */
    public List<Frame> drain() {
        List<Frame> out = new ArrayList<>(byFlow.size() * COPIES);
        for (Iterator<Last> it = byFlow.values().iterator(); it.hasNext(); ) {
            Last l = it.next();
            it.remove();
            for (int i = 0; i < COPIES; i++) {
                out.add(pureAck(l));
            }
        }
        return out;
    }

    private static Frame pureAck(Last l) {
        byte[] h = l.headers().clone();
        ByteBuf b = Unpooled.wrappedBuffer(h); // writes land in h, which the checksums then read
        int ip = l.vnetHdrLen() + l.ipOffset();
        int ipHeader = l.tcpOffset() - l.ipOffset();
        int tcp = l.vnetHdrLen() + l.tcpOffset();
        b.setShort(ip + 2, ipHeader + TCP_HEADER);
        b.setShort(ip + 10, 0);
        b.setShort(ip + 10, ~Checksums.sum(h, ip, ipHeader, 0) & 0xffff);
        b.setInt(tcp + 4, (int) l.nextSeq());
        b.setInt(tcp + 8, (int) l.ack());
        b.setByte(tcp + 12, 5 << 4);
        b.setByte(tcp + 13, PacketView.TCP_ACK);
        b.setShort(tcp + 14, l.window());
        b.setShort(tcp + 16, 0);
        b.setShort(tcp + 18, 0);
        int pseudo = Checksums.sum(h, ip + 12, 8, PacketView.PROTO_TCP + TCP_HEADER);
        b.setShort(tcp + 16, ~Checksums.sum(h, tcp, TCP_HEADER, pseudo) & 0xffff);
        return new Frame(b, l.vnetHdrLen());
    }
}
