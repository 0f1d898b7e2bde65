package dev.colo.proxy.compare;

import dev.colo.proxy.frame.Frame;
import dev.colo.proxy.packet.Classification;
import dev.colo.proxy.packet.FlowKey;
import dev.colo.proxy.packet.PacketView;
import io.netty.buffer.ByteBuf;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.Iterator;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;

/**
 * Compares the two VMs' output and decides what the primary may release. Pure: stepped by
 * {@link #onPrimary}, {@link #onSecondary}, {@link #onCheckpointCommitted} and {@link #doWork} with
 * the caller's {@code nowNs}; single-threaded; takes ownership of every frame handed in.
 *
 * <p>TCP is compared as a byte stream per direction: each side's bytes are placed at their offset
 * from that side's initial sequence number, so different segmentation, ISNs, windows and options all
 * pass. A primary frame leaves once every byte it carries matched. Pure ACKs and retransmissions of
 * matched bytes leave at once. SYN, FIN and RST must appear on both sides at the same place. UDP and
 * ICMP compare everything after the IP header, in order; other frames compare whole. A mismatch
 * stops comparison on that flow only: other flows keep matching and releasing.
 */
public final class Comparator {
    /** How many of the SVM's datagrams on a flow a PVM datagram may be matched against out of order. */
    static final int UDP_REORDER_WINDOW = 8;
    private final CompareConfig config;
    private final CompareSink sink;
    private final CompareStats stats;
    /** What the PVM acknowledged so far (shared with the path), and the floor this generation starts from. */
    private final AckLedger ledger;
    private final AckLedger floors;
    private final PacketView view = new PacketView();
    /** Reused for datagram comparison: nothing is allocated per compared frame. */
    private final PacketView left = new PacketView();
    private final PacketView right = new PacketView();
    private final Map<FlowKey, TcpFlow> tcpFlows = new HashMap<>();
    private final Map<FlowKey, DatagramFlow> datagramFlows = new HashMap<>();
    /** Every held primary frame in arrival order; released ones are skipped lazily. */
    private final ArrayDeque<Held> primaryArrivals = new ArrayDeque<>();
    /** Every held secondary frame in arrival order, for secondary ageing. */
    private final ArrayDeque<Held> secondaryArrivals = new ArrayDeque<>();
    private long order;
    private int heldPrimary;
    private int heldSecondary;
    private boolean passthrough;
    private boolean checkpointPending;
    private long checkpointRequestedNs;

    public Comparator(CompareConfig config, CompareSink sink) {
        this(config, sink, new CompareStats(), null, null);
    }

    /**
     * @param stats counters shared with other comparators of the same path (one per SVM generation)
     * @param ledger when set, PVM acknowledgements are gated: one leaves only up to what the SVM
     *     acknowledged itself, or up to {@code floors} (what the SVM's checkpoint already covers)
     */
    public Comparator(CompareConfig config, CompareSink sink, CompareStats stats, AckLedger ledger, AckLedger floors) {
        this.config = config;
        this.sink = sink;
        this.stats = stats;
        this.ledger = ledger;
        this.floors = floors;
    }

    public CompareStats stats() {
        stats.heldNow = heldPrimary + heldSecondary;
        stats.flowsNow = tcpFlows.size() + datagramFlows.size();
        return stats;
    }

    /** Frames held now, both sides. */
    public int held() {
        return heldPrimary + heldSecondary;
    }

    public int flows() {
        return tcpFlows.size() + datagramFlows.size();
    }

    public boolean checkpointPending() {
        return checkpointPending;
    }

    /** Held frame: one side's frame waiting for its counterpart. */
    private static final class Held {
        final Frame frame;
        final long arrivalNs;
        final long order;
        final boolean primary;
        long start;
        long end;
        /** The TCP acknowledgement it carries, -1 for none. */
        long ack = -1;
        boolean done;

        Held(Frame frame, long arrivalNs, long order, boolean primary) {
            this.frame = frame;
            this.arrivalNs = arrivalNs;
            this.order = order;
            this.primary = primary;
        }
    }

    // --- events ---

    /** A frame the primary VM sent. */
    public void onPrimary(Frame frame, long nowNs) {
        view.parse(frame.ethernet());
        stats.count(view.classification());
        if (passthrough) {
            releaseNow(frame);
            return;
        }
        if (heldPrimary >= 2L * config.maxHeldTotal()) {
            stats.overflowDropped++;
            frame.release();
            requestCheckpoint(Reason.QUEUE_FULL, "-", heldPrimary, "hard limit reached, dropping primary output", nowNs);
            return;
        }
        if (view.classification() == Classification.TCP) {
            onTcp(true, frame, nowNs);
        } else {
            onDatagram(true, frame, nowNs);
        }
        if (heldPrimary + heldSecondary >= config.maxHeldTotal()) {
            requestCheckpoint(Reason.QUEUE_FULL, "-", heldPrimary + heldSecondary, "held frames reached " + config.maxHeldTotal(), nowNs);
        }
    }

    /** A frame the secondary VM sent. */
    public void onSecondary(Frame frame, long nowNs) {
        if (passthrough) {
            dropSecondary(frame);
            return;
        }
        view.parse(frame.ethernet());
        if (view.classification() == Classification.TCP) {
            onTcp(false, frame, nowNs);
        } else {
            onDatagram(false, frame, nowNs);
        }
        if (heldSecondary >= 2L * config.maxHeldTotal()) {
            // The secondary is far ahead or diverged; its surplus is worthless after the checkpoint.
            dropAllSecondary();
        }
    }

    /** The checkpoint committed: both VMs are identical again. Release all, forget all. */
    public void onCheckpointCommitted(long nowNs) {
        stats.commits++;
        releaseAllHeld(nowNs);
        checkpointPending = false;
    }

    /** No secondary (unprotected): release everything held and stop comparing until re-protected. */
    public void setPassthrough(boolean on, long nowNs) {
        passthrough = on;
        if (on) {
            releaseAllHeld(nowNs);
            checkpointPending = false;
        }
    }

    public boolean passthrough() {
        return passthrough;
    }

    /** Ageing: a frame waiting longer than the compare timeout asks for a checkpoint. */
    public void doWork(long nowNs) {
        Held p = oldest(primaryArrivals);
        if (p != null && nowNs - p.arrivalNs > config.compareTimeoutNs()) {
            requestCheckpoint(Reason.PRIMARY_TIMEOUT, flowName(p), p.start, "held " + (nowNs - p.arrivalNs) / 1_000_000 + " ms", nowNs);
        }
        Held s = oldest(secondaryArrivals);
        if (s != null && nowNs - s.arrivalNs > config.compareTimeoutNs()) {
            requestCheckpoint(Reason.SECONDARY_TIMEOUT, flowName(s), s.start, "unmatched " + (nowNs - s.arrivalNs) / 1_000_000 + " ms", nowNs);
        }
        if (checkpointPending && nowNs - checkpointRequestedNs > 2 * config.compareTimeoutNs()) {
            checkpointPending = false;
            requestCheckpoint(Reason.RETRY, "-", heldPrimary, "no commit for " + (nowNs - checkpointRequestedNs) / 1_000_000 + " ms", nowNs);
        }
        expireIdleFlows(nowNs);
    }

    private String flowName(Held h) {
        for (Map.Entry<FlowKey, TcpFlow> e : tcpFlows.entrySet()) {
            if (e.getValue().owns(h)) {
                return e.getKey().toString();
            }
        }
        for (Map.Entry<FlowKey, DatagramFlow> e : datagramFlows.entrySet()) {
            if (e.getValue().owns(h)) {
                return e.getKey().toString();
            }
        }
        return "-";
    }

    private static Held oldest(ArrayDeque<Held> q) {
        while (!q.isEmpty() && q.peekFirst().done) {
            q.pollFirst();
        }
        return q.peekFirst();
    }

    private void requestCheckpoint(Reason reason, String flow, long offset, String detail, long nowNs) {
        if (checkpointPending) {
            return;
        }
        checkpointPending = true;
        checkpointRequestedNs = nowNs;
        stats.count(reason);
        Held oldest = oldest(primaryArrivals);
        sink.checkpoint(new CheckpointRequest(reason, flow, offset, detail, nowNs, oldest == null ? 0 : nowNs - oldest.arrivalNs,
                oldest == null ? "-" : flowName(oldest)));
    }

    /** On demand, e.g. from an operator. */
    public void requestCheckpoint(String detail, long nowNs) {
        requestCheckpoint(Reason.ON_DEMAND, "-", 0, detail, nowNs);
    }

    // --- release and drop ---

    private void releaseNow(Frame f) {
        stats.released++;
        stats.releasedUncompared++;
        sink.release(f);
    }

    private void releaseHeld(Held h, boolean matched, long nowNs) {
        if (h.done) {
            return;
        }
        h.done = true;
        heldPrimary--;
        oldest(primaryArrivals); // keeps the deque as short as the oldest frame still held
        stats.released++;
        if (matched) {
            stats.matchedFrames++;
        } else {
            stats.releasedUncompared++;
        }
        stats.holdNanosTotal += nowNs - h.arrivalNs;
        sink.release(h.frame);
    }

    private void dropHeldSecondary(Held h) {
        if (h.done) {
            return;
        }
        h.done = true;
        heldSecondary--;
        oldest(secondaryArrivals);
        dropSecondary(h.frame);
    }

    private void dropSecondary(Frame f) {
        stats.secondaryDropped++;
        f.release();
    }

    private void releaseAllHeld(long nowNs) {
        List<Held> all = new ArrayList<>(primaryArrivals);
        primaryArrivals.clear();
        for (Held h : all) {
            releaseHeld(h, false, nowNs);
        }
        dropAllSecondary();
        tcpFlows.clear();
        datagramFlows.clear();
    }

    private void dropAllSecondary() {
        List<Held> all = new ArrayList<>(secondaryArrivals);
        secondaryArrivals.clear();
        for (Held h : all) {
            dropHeldSecondary(h);
        }
        for (TcpFlow f : tcpFlows.values()) {
            f.forgetSecondary();
        }
        for (DatagramFlow f : datagramFlows.values()) {
            f.secondary.clear();
        }
    }

    private Held holdPrimary(Frame f, long nowNs) {
        Held h = new Held(f, nowNs, order++, true);
        primaryArrivals.addLast(h);
        heldPrimary++;
        return h;
    }

    private Held holdSecondary(Frame f, long nowNs) {
        Held h = new Held(f, nowNs, order++, false);
        secondaryArrivals.addLast(h);
        heldSecondary++;
        return h;
    }

    private boolean tableFull(long nowNs) {
        int flows = tcpFlows.size() + datagramFlows.size();
        if (flows >= config.maxFlows()) {
            requestCheckpoint(Reason.CONNECTION_TABLE_FULL, "-", flows, "tracking " + flows + " flows", nowNs);
        }
        return flows >= 2 * config.maxFlows();
    }

    private void expireIdleFlows(long nowNs) {
        tcpFlows.values().removeIf(f -> f.idle(nowNs, config.idleFlowNs()));
        datagramFlows.values().removeIf(f -> f.primary.isEmpty() && f.secondary.isEmpty() && nowNs - f.lastNs > config.idleFlowNs());
    }

    // --- datagrams: UDP, ICMP, everything else ---

    private final class DatagramFlow {
        final ArrayDeque<Held> primary = new ArrayDeque<>();
        final ArrayDeque<Held> secondary = new ArrayDeque<>();
        final Classification kind;
        boolean diverged;
        long lastNs;

        DatagramFlow(Classification kind) {
            this.kind = kind;
        }

        boolean owns(Held h) {
            return primary.contains(h) || secondary.contains(h);
        }
    }

    private void onDatagram(boolean fromPrimary, Frame frame, long nowNs) {
        FlowKey key = view.classification().malformed() ? new FlowKey(-1, 1024 + view.classification().ordinal(), 0, 0, 0, 0, 0, 0) : view.flowKey();
        DatagramFlow flow = datagramFlows.get(key);
        if (flow == null) {
            if (tableFull(nowNs)) {
                dropOverflow(fromPrimary, frame);
                return;
            }
            flow = new DatagramFlow(view.classification());
            datagramFlows.put(key, flow);
        }
        flow.lastNs = nowNs;
        if (fromPrimary) {
            Held h = holdPrimary(frame, nowNs);
            flow.primary.addLast(h);
            if (flow.primary.size() > config.maxHeldPerFlow()) {
                requestCheckpoint(Reason.QUEUE_FULL, key.toString(), flow.primary.size(), "per-flow queue bound " + config.maxHeldPerFlow(), nowNs);
            }
        } else {
            if (flow.diverged) {
                dropSecondary(frame);
                return;
            }
            flow.secondary.addLast(holdSecondary(frame, nowNs));
        }
        if (flow.diverged) {
            return;
        }
        while (!flow.primary.isEmpty() && !flow.secondary.isEmpty()) {
            Held p = flow.primary.peekFirst();
            Held s = flow.secondary.peekFirst();
            int diff = datagramDiff(flow.kind, p.frame, s.frame);
            if (diff >= 0 && flow.kind == Classification.UDP) {
                // UDP has no order: two datagrams the SVM sent the other way round are a match,
                // not a divergence. Look for the PVM's next one among the SVM's first few.
                Held same = null;
                int looked = 0;
                for (Held x : flow.secondary) {
                    if (++looked > UDP_REORDER_WINDOW) {
                        break;
                    }
                    if (x != s && datagramDiff(flow.kind, p.frame, x.frame) < 0) {
                        same = x;
                        break;
                    }
                }
                if (same != null) {
                    flow.primary.pollFirst();
                    flow.secondary.remove(same);
                    stats.comparedBytes += p.frame.length();
                    stats.udpReordered++;
                    releaseHeld(p, true, nowNs);
                    dropHeldSecondary(same);
                    continue;
                }
                if (flow.secondary.size() < Math.min(flow.primary.size(), UDP_REORDER_WINDOW)) {
                    return; // the SVM has sent fewer than the PVM: its copy may still come
                }
            }
            if (diff >= 0) {
                flow.diverged = true;
                Reason r = flow.kind == Classification.UDP ? Reason.UDP_MISMATCH
                        : flow.kind == Classification.ICMP ? Reason.ICMP_MISMATCH : Reason.FRAME_MISMATCH;
                requestCheckpoint(r, key.toString(), diff, "datagram differs at byte " + diff, nowNs);
                return;
            }
            flow.primary.pollFirst();
            flow.secondary.pollFirst();
            stats.comparedBytes += p.frame.length();
            releaseHeld(p, true, nowNs);
            dropHeldSecondary(s);
        }
    }

    private void dropOverflow(boolean fromPrimary, Frame frame) {
        if (fromPrimary) {
            stats.overflowDropped++;
        } else {
            stats.secondaryDropped++;
        }
        frame.release();
    }

    /** First differing byte index (in the compared range), or -1 when equal. */
    private int datagramDiff(Classification kind, Frame a, Frame b) {
        ByteBuf ea = a.ethernet();
        ByteBuf eb = b.ethernet();
        int aOff;
        int aLen;
        int bOff;
        int bLen;
        if (kind == Classification.UDP || kind == Classification.ICMP) {
            PacketView va = left.parse(ea);
            PacketView vb = right.parse(eb);
            aOff = va.afterIpOffset();
            aLen = va.afterIpLength();
            bOff = vb.afterIpOffset();
            bLen = vb.afterIpLength();
        } else {
            aOff = ea.readerIndex();
            aLen = ea.readableBytes();
            bOff = eb.readerIndex();
            bLen = eb.readableBytes();
        }
        int n = Math.min(aLen, bLen);
        int d = firstDiff(ea, aOff, eb, bOff, n);
        if (d >= 0) {
            return d;
        }
        return aLen == bLen ? -1 : n;
    }

    /** Index of the first differing byte in the two ranges, or -1 (vectorized where the JDK can). */
    static int firstDiff(ByteBuf a, int aOff, ByteBuf b, int bOff, int len) {
        if (len >= 64 && a.nioBufferCount() == 1 && b.nioBufferCount() == 1) {
            return a.nioBuffer(aOff, len).mismatch(b.nioBuffer(bOff, len));
        }
        int i = 0;
        for (; i + 8 <= len; i += 8) {
            if (a.getLong(aOff + i) != b.getLong(bOff + i)) {
                break;
            }
        }
        for (; i < len; i++) {
            if (a.getByte(aOff + i) != b.getByte(bOff + i)) {
                return i;
            }
        }
        return -1;
    }

    // --- TCP ---

    /** One side's view of a TCP direction. */
    private static final class Side {
        long isn = -1;
        boolean rst;
        /** Bytes available for comparison, indexed by start offset; the longest segment per start. */
        final TreeMap<Long, Seg> index = new TreeMap<>();
        /** Held frames sorted by end offset, for release (primary) or drop (secondary). */
        final EndOrdered byEnd = new EndOrdered();
        final List<Held> control = new ArrayList<>();
        int maxSegLen;
    }

    /**
     * Held frames sorted by end offset. Segments nearly always arrive in order, so an insert is an
     * append; an out-of-order one walks back from the tail.
     */
    static final class EndOrdered {
        private final ArrayDeque<Held> q = new ArrayDeque<>();

        void add(Held h) {
            if (q.isEmpty() || q.peekLast().end <= h.end) {
                q.addLast(h);
                return;
            }
            ArrayDeque<Held> tail = new ArrayDeque<>();
            while (!q.isEmpty() && q.peekLast().end > h.end) {
                tail.addFirst(q.pollLast());
            }
            q.addLast(h);
            q.addAll(tail);
        }

        Held peek() {
            return q.peekFirst();
        }

        Held poll() {
            return q.pollFirst();
        }

        boolean isEmpty() {
            return q.isEmpty();
        }

        int size() {
            return q.size();
        }

        boolean contains(Held h) {
            return q.contains(h);
        }

        void clear() {
            q.clear();
        }

        Iterable<Held> all() {
            return q;
        }
    }

    /** Where one segment's payload sits. */
    private record Seg(long start, int len, boolean fin, ByteBuf buf, int payloadOffset) {
        long dataEnd() {
            return start + len;
        }

        long end() {
            return start + len + (fin ? 1 : 0);
        }
    }

    private final class TcpFlow {
        final FlowKey key;
        final Side primary = new Side();
        final Side secondary = new Side();
        /** Relative mode: offsets from each side's own ISN; absolute mode: from {@link #base}. */
        final boolean relative;
        long base;
        /** Offset up to which both sides are known equal; Long.MIN_VALUE until both sides began. */
        long matched = Long.MIN_VALUE;
        long primaryFirst = Long.MIN_VALUE;
        long secondaryFirst = Long.MIN_VALUE;
        boolean diverged;
        boolean finMatched;
        /** The http_date rule's view of this flow, when it is on; made at the first comparison. */
        HttpDateNormalizer dates;
        long lastNs;
        /** The highest acknowledgement the SVM sent on this flow (or the generation's floor); -1: none. */
        long svmAck = -1;
        /** Primary frames that may leave but acknowledge more than the SVM did, in order. */
        final ArrayDeque<Held> ackWaiting = new ArrayDeque<>();

        TcpFlow(FlowKey key, boolean relative, long base) {
            this.key = key;
            this.relative = relative;
            this.base = base;
        }

        boolean owns(Held h) {
            return primary.byEnd.contains(h) || secondary.byEnd.contains(h) || primary.control.contains(h) || ackWaiting.contains(h);
        }

        boolean ready() {
            return relative ? primary.isn >= 0 && secondary.isn >= 0 : matched != Long.MIN_VALUE;
        }

        long offset(Side side, long seq) {
            long ref = relative ? (side.isn + 1) & 0xffffffffL : base;
            long anchor = matched == Long.MIN_VALUE ? 0 : matched;
            long anchorSeq = (ref + anchor) & 0xffffffffL;
            return anchor + (int) (seq - anchorSeq);
        }

        void forgetSecondary() {
            secondary.index.clear();
            secondary.byEnd.clear();
        }

        boolean idle(long nowNs, long idleNs) {
            boolean empty = primary.byEnd.isEmpty() && primary.control.isEmpty() && secondary.byEnd.isEmpty() && ackWaiting.isEmpty();
            boolean closed = finMatched || (primary.rst && secondary.rst);
            return empty && (closed || nowNs - lastNs > idleNs);
        }
    }

    private void onTcp(boolean fromPrimary, Frame frame, long nowNs) {
        FlowKey key = view.flowKey();
        boolean syn = view.hasFlag(PacketView.TCP_SYN);
        TcpFlow flow = tcpFlows.get(key);
        if (flow != null && syn && flow.finMatched) {
            tcpFlows.remove(key); // port reuse after a clean close
            flow = null;
        }
        if (flow == null) {
            if (tableFull(nowNs)) {
                dropOverflow(fromPrimary, frame);
                return;
            }
            flow = new TcpFlow(key, syn, view.seq());
            tcpFlows.put(key, flow);
            Long floor = floors == null ? null : floors.floor(key);
            if (floor != null) {
                flow.svmAck = floor;
            }
        }
        flow.lastNs = nowNs;
        Side side = fromPrimary ? flow.primary : flow.secondary;
        long ack = view.hasFlag(PacketView.TCP_ACK) ? view.ack() : -1;
        if (ack >= 0 && ledger != null) {
            if (fromPrimary) {
                ledger.onPvmAck(key, ack);
            } else if (flow.svmAck < 0 || (int) (ack - flow.svmAck) > 0) {
                flow.svmAck = ack;
                releaseAckWaiting(flow, nowNs);
            }
        }

        if (flow.diverged) {
            if (fromPrimary) {
                holdControl(flow.primary, frame, nowNs);
            } else {
                dropSecondary(frame);
            }
            return;
        }

        if (syn) {
            onTcpSyn(flow, side, fromPrimary, frame, nowNs);
            return;
        }
        if (view.hasFlag(PacketView.TCP_RST)) {
            onTcpRst(flow, side, fromPrimary, frame, nowNs);
            return;
        }
        boolean fin = view.hasFlag(PacketView.TCP_FIN);
        int len = view.payloadLength();
        if (len == 0 && !fin) {
            // Pure ACKs and window updates carry nothing to compare, but an acknowledgement must not
            // tell the client more than the SVM has.
            passGated(flow, fromPrimary, frame, ack, nowNs);
            return;
        }
        if (flow.relative && side.isn < 0) {
            // Data before this side's SYN: the streams cannot be lined up.
            if (fromPrimary) {
                holdControl(side, frame, nowNs);
            } else {
                dropSecondary(frame);
            }
            diverge(flow, Reason.TCP_CONTROL_MISMATCH, 0, (fromPrimary ? "primary" : "secondary") + " data before its SYN", nowNs);
            return;
        }
        long start = flow.offset(side, view.seq());
        Seg seg = new Seg(start, len, fin, frame.ethernet(), view.payloadOffset());
        if (flow.matched != Long.MIN_VALUE && seg.end() <= flow.matched) {
            // A retransmission (or keepalive) of bytes already matched.
            passGated(flow, fromPrimary, frame, ack, nowNs);
            return;
        }
        Held h = fromPrimary ? holdPrimary(frame, nowNs) : holdSecondary(frame, nowNs);
        h.start = start;
        h.end = seg.end();
        h.ack = ack;
        side.byEnd.add(h);
        Seg existing = side.index.get(start);
        if (existing == null || existing.end() < seg.end()) {
            side.index.put(start, seg);
        }
        side.maxSegLen = Math.max(side.maxSegLen, len + 1);
        if (!flow.relative && flow.matched == Long.MIN_VALUE) {
            if (fromPrimary && flow.primaryFirst == Long.MIN_VALUE) {
                flow.primaryFirst = start;
            } else if (!fromPrimary && flow.secondaryFirst == Long.MIN_VALUE) {
                flow.secondaryFirst = start;
            }
            if (flow.primaryFirst != Long.MIN_VALUE && flow.secondaryFirst != Long.MIN_VALUE) {
                // Picked up mid-stream (after a checkpoint both sides are identical): start where both have bytes.
                flow.matched = Math.max(flow.primaryFirst, flow.secondaryFirst);
            }
        }
        if (fromPrimary && flow.primary.byEnd.size() > config.maxHeldPerFlow()) {
            requestCheckpoint(Reason.QUEUE_FULL, key.toString(), start, "per-flow queue bound " + config.maxHeldPerFlow(), nowNs);
        }
        advance(flow, nowNs);
    }

    private void onTcpSyn(TcpFlow flow, Side side, boolean fromPrimary, Frame frame, long nowNs) {
        long seq = view.seq();
        if (side.isn >= 0 && side.isn != seq) {
            if (fromPrimary) {
                holdControl(side, frame, nowNs);
            } else {
                dropSecondary(frame);
            }
            diverge(flow, Reason.TCP_CONTROL_MISMATCH, 0, "a second SYN with another sequence number", nowNs);
            return;
        }
        if (!flow.relative) {
            passUncompared(fromPrimary, frame);
            return;
        }
        side.isn = seq;
        if (fromPrimary) {
            if (flow.secondary.isn >= 0) {
                releaseNow(frame);
            } else {
                holdControl(side, frame, nowNs);
            }
        } else {
            dropSecondary(frame);
        }
        if (flow.primary.isn >= 0 && flow.secondary.isn >= 0) {
            if (flow.matched == Long.MIN_VALUE) {
                flow.matched = 0;
            }
            releaseControl(flow.primary, nowNs);
            advance(flow, nowNs);
        }
    }

    private void onTcpRst(TcpFlow flow, Side side, boolean fromPrimary, Frame frame, long nowNs) {
        side.rst = true;
        if (fromPrimary) {
            if (flow.secondary.rst) {
                releaseNow(frame);
            } else {
                holdControl(side, frame, nowNs);
            }
        } else {
            dropSecondary(frame);
            releaseControl(flow.primary, nowNs);
        }
    }

    /** A primary SYN/RST (or any frame of a diverged flow) waits for the secondary or the commit. */
    private void holdControl(Side side, Frame frame, long nowNs) {
        Held h = holdPrimary(frame, nowNs);
        h.end = Long.MAX_VALUE;
        side.control.add(h);
    }

    /**
     * A primary frame with nothing (new) to compare leaves now, unless it acknowledges client bytes
     * the SVM has not acknowledged: then it waits for the SVM's acknowledgement (or the commit).
     */
    private void passGated(TcpFlow flow, boolean fromPrimary, Frame frame, long ack, long nowNs) {
        if (!fromPrimary || ledger == null || (flow.ackWaiting.isEmpty() && ackCovered(flow, ack))) {
            passUncompared(fromPrimary, frame);
            return;
        }
        Held h = holdPrimary(frame, nowNs);
        h.ack = ack;
        h.end = Long.MAX_VALUE;
        flow.ackWaiting.addLast(h);
        stats.ackHeld++;
    }

    private static boolean ackCovered(TcpFlow flow, long ack) {
        return ack < 0 || (flow.svmAck >= 0 && (int) (ack - flow.svmAck) <= 0);
    }

    /** A matched primary frame leaves if its acknowledgement is covered, else it queues behind the ones that wait. */
    private void releaseMatched(TcpFlow flow, Held h, long nowNs) {
        if (ledger == null || (flow.ackWaiting.isEmpty() && ackCovered(flow, h.ack))) {
            releaseHeld(h, true, nowNs);
        } else {
            flow.ackWaiting.addLast(h);
            stats.ackHeld++;
        }
    }

    private void releaseAckWaiting(TcpFlow flow, long nowNs) {
        while (!flow.ackWaiting.isEmpty() && ackCovered(flow, flow.ackWaiting.peekFirst().ack)) {
            releaseHeld(flow.ackWaiting.pollFirst(), true, nowNs);
        }
    }

    /** Frames that carry nothing to compare: the primary's leave, the secondary's are dropped. */
    private void passUncompared(boolean fromPrimary, Frame frame) {
        if (fromPrimary) {
            releaseNow(frame);
        } else {
            dropSecondary(frame);
        }
    }

    private void releaseControl(Side primary, long nowNs) {
        for (Held h : primary.control) {
            releaseHeld(h, true, nowNs);
        }
        primary.control.clear();
    }

    private void diverge(TcpFlow flow, Reason reason, long offset, String detail, long nowNs) {
        flow.diverged = true;
        // Its held frames now wait for the commit; secondary bytes are worthless.
        for (Held h : flow.secondary.byEnd.all()) {
            dropHeldSecondary(h);
        }
        flow.forgetSecondary();
        requestCheckpoint(reason, flow.key.toString(), offset, detail, nowNs);
    }

    /** Compares as far as both sides have bytes, then releases and drops what is covered. */
    private void advance(TcpFlow flow, long nowNs) {
        if (!flow.ready()) {
            return;
        }
        while (true) {
            Seg p = covering(flow.primary, flow.matched);
            Seg s = covering(flow.secondary, flow.matched);
            if (p == null || s == null) {
                break;
            }
            long m = flow.matched;
            boolean pData = p.start <= m && m < p.dataEnd();
            boolean sData = s.start <= m && m < s.dataEnd();
            if (pData && sData) {
                int n = (int) (Math.min(p.dataEnd(), s.dataEnd()) - m);
                int d = firstDiff(p.buf, p.payloadOffset + (int) (m - p.start), s.buf, s.payloadOffset + (int) (m - s.start), n);
                if (config.httpDate() && flow.dates == null) {
                    flow.dates = new HttpDateNormalizer(flow.relative && m == 0);
                }
                if (d >= 0) {
                    if (flow.dates != null && !flow.dates.gaveUp()) {
                        feedDates(flow, p, m, d);
                        stats.comparedBytes += d;
                        flow.matched = m + d;
                        int skip = equalDates(flow, m + d);
                        if (skip > 0) {
                            stats.normalizedHttpDate++;
                            flow.matched = m + d + skip;
                            continue;
                        }
                        if (skip == 0) {
                            break; // both values are not all here yet
                        }
                    }
                    diverge(flow, Reason.PAYLOAD_MISMATCH, m + d, "first differing byte at stream offset " + (m + d), nowNs);
                    return;
                }
                if (flow.dates != null && !flow.dates.gaveUp()) {
                    feedDates(flow, p, m, n);
                }
                stats.comparedBytes += n;
                flow.matched = m + n;
            } else if (!pData && !sData && p.fin && s.fin && p.dataEnd() == m && s.dataEnd() == m) {
                flow.matched = m + 1;
                flow.finMatched = true;
            } else {
                diverge(flow, Reason.TCP_CONTROL_MISMATCH, m, (pData ? "secondary" : "primary") + " closed (FIN) where the other sent data", nowNs);
                return;
            }
        }
        long m = flow.matched;
        while (!flow.primary.byEnd.isEmpty() && flow.primary.byEnd.peek().end <= m) {
            releaseMatched(flow, flow.primary.byEnd.poll(), nowNs);
        }
        while (!flow.secondary.byEnd.isEmpty() && flow.secondary.byEnd.peek().end <= m) {
            dropHeldSecondary(flow.secondary.byEnd.poll());
        }
        prune(flow.primary.index, m);
        prune(flow.secondary.index, m);
    }

    private static void feedDates(TcpFlow flow, Seg p, long from, int len) {
        int at = p.payloadOffset + (int) (from - p.start);
        for (int i = 0; i < len; i++) {
            flow.dates.onMatched(p.buf.getByte(at + i) & 0xff);
        }
    }

    /**
     * The http_date rule at a mismatch at {@code x}: how many bytes from {@code x} on are two
     * equal-length, well-formed Date values (and their CR) to take as equal; 0 when the values are
     * not all here yet; -1 when this is not such a difference.
     */
    private int equalDates(TcpFlow flow, long x) {
        int k = flow.dates.dateValueOffset();
        if (k < 0) {
            return -1;
        }
        int need = HttpDateNormalizer.VALUE_LENGTH - k + 1;
        byte[] pRest = bytesAt(flow.primary, x, need);
        byte[] sRest = bytesAt(flow.secondary, x, need);
        if (pRest == null || sRest == null) {
            return 0;
        }
        byte[] soFar = flow.dates.valueSoFar();
        if (!HttpDateNormalizer.bothWellFormed(concat(soFar, pRest), concat(soFar, sRest))) {
            return -1;
        }
        for (byte b : pRest) {
            flow.dates.onMatched(b & 0xff);
        }
        return need;
    }

    private static byte[] concat(byte[] a, byte[] b) {
        byte[] out = java.util.Arrays.copyOf(a, a.length + b.length);
        System.arraycopy(b, 0, out, a.length, b.length);
        return out;
    }

    /** {@code len} bytes of one side's stream from offset {@code off}, across segments; null if not all arrived. */
    private static byte[] bytesAt(Side side, long off, int len) {
        byte[] out = new byte[len];
        int got = 0;
        while (got < len) {
            Seg seg = covering(side, off + got);
            if (seg == null || seg.start > off + got || seg.dataEnd() <= off + got) {
                return null;
            }
            int n = (int) Math.min(len - got, seg.dataEnd() - (off + got));
            seg.buf.getBytes(seg.payloadOffset + (int) (off + got - seg.start), out, got, n);
            got += n;
        }
        return out;
    }

    private static void prune(TreeMap<Long, Seg> index, long matched) {
        Iterator<Map.Entry<Long, Seg>> it = index.entrySet().iterator();
        while (it.hasNext()) {
            Map.Entry<Long, Seg> e = it.next();
            if (e.getKey() > matched) {
                break;
            }
            if (e.getValue().end() <= matched) {
                it.remove();
            }
        }
    }

    /** The segment holding offset {@code m} (data at m, or a FIN right at m). */
    private static Seg covering(Side side, long m) {
        Map.Entry<Long, Seg> e = side.index.floorEntry(m);
        Seg best = null;
        while (e != null && e.getKey() >= m - side.maxSegLen) {
            Seg s = e.getValue();
            if (s.dataEnd() > m || (s.fin && s.dataEnd() == m)) {
                if (best == null || s.dataEnd() > best.dataEnd()) {
                    best = s;
                }
                if (s.dataEnd() > m) {
                    return s;
                }
            }
            e = side.index.lowerEntry(e.getKey());
        }
        return best;
    }

    /**
     * Takes every primary frame still held, in arrival order, without releasing it, and forgets
     * everything else (secondary frames are dropped). Used when the SVM these frames waited for
     * will never run: they go to another comparator. The comparator must not be used afterwards.
     */
    public List<Frame> drainHeldPrimary() {
        List<Frame> out = new ArrayList<>();
        for (Held h : primaryArrivals) {
            if (!h.done) {
                h.done = true;
                out.add(h.frame);
            }
        }
        primaryArrivals.clear();
        heldPrimary = 0;
        close();
        return out;
    }

    /** Releases every held primary frame (a checkpoint covers them all) and drops the rest; the comparator must not be used afterwards. */
    public void releaseAllAndClose(long nowNs) {
        stats.commits++;
        releaseAllHeld(nowNs);
        close();
    }

    /** Releases every buffer; the comparator must not be used afterwards. */
    public void close() {
        for (Held h : primaryArrivals) {
            if (!h.done) {
                h.done = true;
                h.frame.release();
            }
        }
        for (Held h : secondaryArrivals) {
            if (!h.done) {
                h.done = true;
                h.frame.release();
            }
        }
        primaryArrivals.clear();
        secondaryArrivals.clear();
        tcpFlows.clear();
        datagramFlows.clear();
        heldPrimary = 0;
        heldSecondary = 0;
    }
}
