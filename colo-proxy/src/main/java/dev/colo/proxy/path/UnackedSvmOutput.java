package dev.colo.proxy.path;

import dev.colo.proxy.frame.Frame;
import dev.colo.proxy.packet.Classification;
import dev.colo.proxy.packet.FlowKey;
import dev.colo.proxy.packet.PacketView;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * The running SVM's TCP segments that no client has acknowledged yet, in the SVM's own sequence
 * space. While the SVM follows, its output only goes to the comparator; the client gets the PVM's
 * copy. If the primary dies with that copy still held, the client has nothing, and the SVM, whose
 * segments the comparator dropped, resends them only when its retransmission timer fires, which has
 * backed off by then (0.2, 0.6, 1.4, 3 s...). At promotion these segments go out at once instead:
 * they are the survivor's own bytes, at the survivor's own sequence numbers, so a client that already
 * has them merely acknowledges again.
 *
 * <p>Bounded: past {@link #maxBytes} the oldest segments go, and the SVM's own timer covers them.
 * Forgotten wholesale when a new SVM starts (its output may differ from the old one's). Pure;
 * single-threaded; owns the copies it holds.
 */
public final class UnackedSvmOutput {
    private record Segment(long seq, int length, Frame frame) {
        long end() {
            return (seq + length) & 0xffffffffL;
        }
    }

    private final PacketView view = new PacketView();
    private final Map<FlowKey, ArrayDeque<Segment>> byFlow = new HashMap<>();
    private final long maxBytes;
    private long bytes;
    private long evicted;

    public UnackedSvmOutput(long maxBytes) {
        this.maxBytes = maxBytes;
    }

    /** A frame the running SVM sent, before it leaves; a copy is kept if it carries data or FIN. */
    public void onSvmOutput(Frame frame) {
        if (view.parse(frame.ethernet()).classification() != Classification.TCP) {
            return;
        }
        FlowKey flow = view.flowKey();
        if (view.hasFlag(PacketView.TCP_RST)) {
            forget(flow);
            return;
        }
        int length = view.payloadLength() + (view.hasFlag(PacketView.TCP_FIN) ? 1 : 0);
        if (length == 0 || view.hasFlag(PacketView.TCP_SYN)) {
            // Pure ACKs carry nothing to wait for. SYN-ACKs are left to the SVM's own timer: with
            // them resent too, one of 12 kills under load ended in a connection reset (cause not
            // yet known), none of 20 without.
            return;
        }
        ArrayDeque<Segment> q = byFlow.computeIfAbsent(flow, k -> new ArrayDeque<>());
        q.addLast(new Segment(view.seq(), length, new Frame(frame.data().copy(), frame.vnetHdrLen())));
        bytes += frame.length();
        while (bytes > maxBytes) {
            evictOldest();
        }
    }

    /** A client frame on its way into the SVM, already in the SVM's space: its ACK prunes. */
    public void onClientInput(Frame frame) {
        if (view.parse(frame.ethernet()).classification() != Classification.TCP) {
            return;
        }
        FlowKey toClient = view.flowKey().reversed();
        if (view.hasFlag(PacketView.TCP_RST)) {
            forget(toClient);
            return;
        }
        if (!view.hasFlag(PacketView.TCP_ACK)) {
            return;
        }
        ArrayDeque<Segment> q = byFlow.get(toClient);
        if (q == null) {
            return;
        }
        long ack = view.ack();
        while (!q.isEmpty() && !after(q.peekFirst().end(), ack)) {
            drop(q.pollFirst());
        }
        if (q.isEmpty()) {
            byFlow.remove(toClient);
        }
    }

    /** Everything still unacknowledged, oldest first per connection; the caller owns the frames. */
    public List<Frame> drain() {
        List<Frame> out = new ArrayList<>();
        for (ArrayDeque<Segment> q : byFlow.values()) {
            for (Segment s : q) {
                out.add(s.frame());
            }
        }
        byFlow.clear();
        bytes = 0;
        return out;
    }

    /** A new SVM runs, or none: what the old one sent is no longer the survivor's. */
    public void clear() {
        for (ArrayDeque<Segment> q : byFlow.values()) {
            for (Segment s : q) {
                s.frame().release();
            }
        }
        byFlow.clear();
        bytes = 0;
    }

    public int connections() {
        return byFlow.size();
    }

    public long bytes() {
        return bytes;
    }

    public long evicted() {
        return evicted;
    }

    private void forget(FlowKey flow) {
        ArrayDeque<Segment> q = byFlow.remove(flow);
        if (q != null) {
            q.forEach(this::drop);
        }
    }

    private void evictOldest() {
        // The largest backlog loses its oldest segment: one bulk transfer should not push out every
        // small answer that a waiting client needs.
        ArrayDeque<Segment> largest = null;
        FlowKey largestKey = null;
        for (var e : byFlow.entrySet()) {
            if (largest == null || e.getValue().size() > largest.size()) {
                largest = e.getValue();
                largestKey = e.getKey();
            }
        }
        if (largest == null) {
            bytes = 0;
            return;
        }
        drop(largest.pollFirst());
        evicted++;
        if (largest.isEmpty()) {
            byFlow.remove(largestKey);
        }
    }

    private void drop(Segment s) {
        bytes -= s.frame().length();
        s.frame().release();
    }

    /** Sequence comparison modulo 2^32: is {@code a} after {@code b}? */
    private static boolean after(long a, long b) {
        return (int) (a - b) > 0;
    }

    public int segments() {
        return byFlow.values().stream().mapToInt(ArrayDeque::size).sum();
    }
}
