package dev.colo.proxy.path;

import dev.colo.proxy.compare.AckLedger;
import dev.colo.proxy.compare.CheckpointRequest;
import dev.colo.proxy.compare.CompareConfig;
import dev.colo.proxy.compare.CompareSink;
import dev.colo.proxy.compare.CompareStats;
import dev.colo.proxy.compare.Comparator;
import dev.colo.proxy.frame.Frame;
import dev.colo.proxy.packet.Classification;
import dev.colo.proxy.packet.PacketView;
import java.util.ArrayDeque;
import java.util.List;
import java.util.function.Consumer;
import java.util.function.IntSupplier;

/**
 * The primary's data path, pure and single-threaded.
 *
 * <p>Client frames go to the PVM and, while a secondary protects it, over the link tagged with the
 * PVM segment that will read them (segment N: after snapshot N). PVM output is compared per SVM
 * generation: the output of segment N waits in generation N's comparator for the SVM loaded from
 * checkpoint N, and leaves when that SVM produced the same bytes, or when a later checkpoint that
 * covers it commits. So at the ack of N only output produced before snapshot N leaves uncompared;
 * what the PVM produced after it still has to match the new SVM. An abandoned checkpoint's output
 * goes back to the running SVM's comparator, and the running SVM never stopped getting input.
 *
 * <p>No PVM frame tells a client that bytes arrived which the SVM does not have: an acknowledgement
 * leaves only up to what the SVM acknowledged itself, or what the SVM's checkpoint covers (the
 * {@link AckLedger} at its snapshot). So whatever is lost on the way to the SVM (the link's
 * high-water mark, a full buffer, a failover) the client sends again.
 *
 * <p>Around the pause, client frames are gated: from {@link #onPausing} until {@link #onSnapshot}
 * they are queued, not written to the PVM, and tagged with the coming segment; frames the PVM had
 * not read yet when it stopped (the NIC tells how many) are sent again for the next SVM only.
 *
 * <p>Where the path is, is one {@link Mode}, changed only through {@link #mode}.
 */
public final class PrimaryPath {
    /** What the path does with the VM's traffic. */
    public enum Mode {
        /** No secondary: a plain switch port, PVM output leaves at once. */
        UNPROTECTED,
        /** A secondary protects (or is being paired): ingress duplicated, output compared per generation. */
        PROTECTING,
        /** The secondary may be gone and the witness has not spoken: nothing leaves, even matched output. */
        HOLDING,
        /** Another node serves the VM: nothing reaches the LAN or the PVM any more. Final. */
        FENCED
    }

    /** One SVM generation: the output of PVM segment {@code seq} and of the SVM loaded from checkpoint {@code seq}. */
    private final class Generation {
        final long seq;
        final Comparator comparator;

        Generation(long seq, AckLedger floors) {
            this.seq = seq;
            this.comparator = new Comparator(config, new CompareSink() {
                @Override
                public void release(Frame primary) {
                    out(primary);
                }

                @Override
                public void checkpoint(CheckpointRequest request) {
                    onCheckpointNeeded.accept(request);
                }
            }, stats, ledger, floors);
        }
    }

    private static final int RECENT = 64;

    private final CompareConfig config;
    private final FrameSink toPvm;
    private final FrameSink toClient;
    private final IngressSink toSecondary;
    private final Consumer<CheckpointRequest> onCheckpointNeeded;
    private final IntSupplier pvmUnread;
    private final CompareStats stats = new CompareStats();
    /** What the PVM acknowledged so far; frozen at each snapshot as the next generation's floor. */
    private final AckLedger ledger = new AckLedger();
    private Mode mode = Mode.UNPROTECTED;
    /** The SVM that runs (null: none yet in this pairing). */
    private Generation running;
    /** After snapshot N, until N commits or is abandoned. */
    private Generation building;
    /** The segment client frames belong to now. */
    private long segment;
    /** The checkpoint whose pause is coming ({@link #onPausing}), 0 when none. */
    private long pausing;
    private final ArrayDeque<Frame> gated = new ArrayDeque<>();
    /** The last frames written to the PVM, for those it had not read at the pause. */
    private final ArrayDeque<Frame> recent = new ArrayDeque<>();
    /** Released output held back while HOLDING. */
    private final ArrayDeque<Frame> withheld = new ArrayDeque<>();
    private final PacketView view = new PacketView();
    /** ARP and ping echoes let out while HOLDING, uncompared (see {@link #onPvmFrame}). */
    private long livenessPassed;
    private long staleSecondaryDropped;
    private long duplicatedToSecondary;
    private long replayedAtPause;

    /**
     * @param pvmUnread how many of the frames written to the PVM it has not read yet (asked right
     *     after the PVM paused); -1 when the NIC cannot tell
     */
    public PrimaryPath(CompareConfig config, FrameSink toPvm, FrameSink toClient, IngressSink toSecondary,
            Consumer<CheckpointRequest> onCheckpointNeeded, IntSupplier pvmUnread) {
        this.config = config;
        this.toPvm = toPvm;
        this.toClient = toClient;
        this.toSecondary = toSecondary;
        this.onCheckpointNeeded = onCheckpointNeeded;
        this.pvmUnread = pvmUnread;
    }

    /** The single gate for every change of mode. */
    private void mode(Mode next) {
        boolean ok = switch (mode) {
            case UNPROTECTED -> next == Mode.PROTECTING || next == Mode.FENCED;
            case PROTECTING -> next == Mode.UNPROTECTED || next == Mode.HOLDING || next == Mode.FENCED;
            case HOLDING -> next == Mode.PROTECTING || next == Mode.UNPROTECTED || next == Mode.FENCED;
            case FENCED -> false;
        };
        if (!ok) {
            throw new IllegalStateException("primary path: illegal mode change " + mode + " -> " + next);
        }
        mode = next;
    }

    public Mode mode() {
        return mode;
    }

    // --- the VM's traffic ---

    /** A frame from the LAN (tap) for the VM. */
    public void onClientFrame(Frame frame, long nowNs) {
        if (mode == Mode.FENCED) {
            frame.release();
            return;
        }
        if (mode != Mode.UNPROTECTED && (running != null || building != null || pausing != 0)) {
            toSecondary.accept(pausing != 0 ? pausing : segment, false, new Frame(frame.data().retainedDuplicate(), frame.vnetHdrLen()));
            duplicatedToSecondary++;
        }
        if (pausing != 0) {
            gated.addLast(frame);
            return;
        }
        writeToPvm(frame);
    }

    private void writeToPvm(Frame frame) {
        if (mode != Mode.UNPROTECTED) {
            recent.addLast(new Frame(frame.data().retainedDuplicate(), frame.vnetHdrLen()));
            if (recent.size() > RECENT) {
                recent.pollFirst().release();
            }
        }
        toPvm.accept(frame);
    }

    /** A frame the PVM sent. */
    public void onPvmFrame(Frame frame, long nowNs) {
        if (mode == Mode.FENCED) {
            frame.release();
            return;
        }
        Generation g = building != null ? building : running;
        if (mode == Mode.UNPROTECTED || g == null) {
            out(frame); // no SVM exists in this pairing yet: there is nothing to fail over to
            return;
        }
        if (mode == Mode.HOLDING && showsTheVmAlive(frame)) {
            // A secondary that lost us asks the LAN whether the VM still answers: while we hold it
            // must see us alive and retire its SVM, or it would promote it beside us. A ping's echo
            // and ARP carry no state a client could act on; any VM would answer them the same.
            livenessPassed++;
            toClient.accept(frame);
            return;
        }
        g.comparator.onPrimary(frame, nowNs);
    }

    private boolean showsTheVmAlive(Frame frame) {
        Classification c = view.parse(frame.ethernet()).classification();
        return c == Classification.ARP || (c == Classification.ICMP && view.ipVersion() == 4 && view.icmpType() == 0);
    }

    /** A frame the SVM of {@code generation} sent, arriving over the link. */
    public void onSecondaryFrame(long generation, Frame frame, long nowNs) {
        Generation g = building != null && building.seq == generation ? building : running != null && running.seq == generation ? running : null;
        if (mode == Mode.UNPROTECTED || mode == Mode.FENCED || g == null) {
            staleSecondaryDropped++;
            frame.release();
            return;
        }
        g.comparator.onSecondary(frame, nowNs);
    }

    private void out(Frame frame) {
        switch (mode) {
            case HOLDING -> withheld.addLast(frame);
            case FENCED -> frame.release();
            default -> toClient.accept(frame);
        }
    }

    // --- protection ---

    /** A secondary starts protecting: the first checkpoint of this pairing will be {@code lastSeq + 1}. */
    public void startProtecting(long lastSeq, long nowNs) {
        if (mode == Mode.UNPROTECTED) {
            mode(Mode.PROTECTING);
            segment = lastSeq;
        }
    }

    /** No secondary any more: everything held leaves (oldest segment first) and comparison stops. */
    public void unprotect(long nowNs) {
        if (mode == Mode.FENCED || mode == Mode.UNPROTECTED) {
            return;
        }
        if (running != null) {
            running.comparator.releaseAllAndClose(nowNs);
            running = null;
        }
        if (building != null) {
            building.comparator.releaseAllAndClose(nowNs);
            building = null;
        }
        mode(Mode.UNPROTECTED);
        flushWithheld();
        openGate();
        clearRecent();
    }

    /** The secondary may be gone: hold every output until the witness speaks. */
    public void hold() {
        if (mode == Mode.PROTECTING) {
            mode(Mode.HOLDING);
        }
    }

    /** The secondary is back before the witness decided: release what was held back, in order. */
    public void resumeProtecting() {
        if (mode == Mode.HOLDING) {
            mode(Mode.PROTECTING);
            flushWithheld();
        }
    }

    private void flushWithheld() {
        while (!withheld.isEmpty()) {
            toClient.accept(withheld.pollFirst());
        }
    }

    /**
     * Another node serves the VM now: nothing more reaches the LAN or the PVM from here, and held
     * output is dropped (the new primary's VM produces it again). Final.
     */
    public void fence() {
        if (mode == Mode.FENCED) {
            return;
        }
        mode(Mode.FENCED);
        for (Generation g : new Generation[] {running, building}) {
            if (g != null) {
                g.comparator.close();
            }
        }
        running = null;
        building = null;
        withheld.forEach(Frame::release);
        withheld.clear();
        gated.forEach(Frame::release);
        gated.clear();
        pausing = 0;
        clearRecent();
    }

    // --- checkpoints ---

    /** Checkpoint {@code seq} is about to pause the PVM: from now on client frames wait for its snapshot. */
    public void onPausing(long seq) {
        if (mode == Mode.PROTECTING || mode == Mode.HOLDING) {
            pausing = seq;
        }
    }

    /**
     * The PVM was paused and snapshotted as checkpoint {@code seq}: its output from now on is
     * segment {@code seq}, compared against the SVM to be loaded from it. Frames the PVM had not
     * read go to that SVM too; the gated ones are written now (the PVM reads them after it resumes).
     */
    public void onSnapshot(long seq, long nowNs) {
        if (mode == Mode.UNPROTECTED || mode == Mode.FENCED) {
            return;
        }
        if (building != null) {
            abandonBuilding(nowNs); // a snapshot without a decision on the previous one: it never ran
        }
        building = new Generation(seq, ledger.frozenCopy());
        segment = seq;
        int unread = pvmUnread.getAsInt();
        if (unread > 0) {
            Frame[] all = recent.toArray(new Frame[0]);
            for (int i = Math.max(0, all.length - unread); i < all.length; i++) {
                toSecondary.accept(seq, true, new Frame(all[i].data().retainedDuplicate(), all[i].vnetHdrLen()));
                replayedAtPause++;
            }
        }
        clearRecent();
        openGate();
    }

    private void openGate() {
        pausing = 0;
        while (!gated.isEmpty()) {
            writeToPvm(gated.pollFirst());
        }
    }

    private void clearRecent() {
        recent.forEach(Frame::release);
        recent.clear();
    }

    /** The secondary runs the SVM of {@code seq}: output produced before snapshot {@code seq} is covered. */
    public void onCheckpointCommitted(long seq, long nowNs) {
        if (building == null || building.seq != seq) {
            return;
        }
        if (running != null) {
            running.comparator.releaseAllAndClose(nowNs);
        }
        running = building;
        building = null;
    }

    /** Checkpoint {@code seq} will not happen: its output waits for the running SVM again. */
    public void onCheckpointAbandoned(long seq, long nowNs) {
        if (pausing == seq) {
            openGate();
        }
        if (building != null && building.seq == seq) {
            abandonBuilding(nowNs);
            segment = running != null ? running.seq : seq - 1;
        }
    }

    private void abandonBuilding(long nowNs) {
        List<Frame> held = building.comparator.drainHeldPrimary();
        building = null;
        for (Frame f : held) {
            if (running != null) {
                running.comparator.onPrimary(f, nowNs);
            } else {
                out(f); // no SVM in this pairing yet
            }
        }
    }

    public void requestCheckpoint(String detail, long nowNs) {
        Generation g = building != null ? building : running;
        if (g != null) {
            g.comparator.requestCheckpoint(detail, nowNs);
        }
    }

    public void doWork(long nowNs) {
        if (running != null) {
            running.comparator.doWork(nowNs);
        }
        if (building != null) {
            building.comparator.doWork(nowNs);
        }
    }

    // --- introspection ---

    /** The generation of the running SVM, 0 when none runs. */
    public long runningGeneration() {
        return running == null ? 0 : running.seq;
    }

    public long segment() {
        return segment;
    }

    public boolean isProtected() {
        return mode == Mode.PROTECTING && running != null;
    }

    public boolean fenced() {
        return mode == Mode.FENCED;
    }

    public CompareStats stats() {
        long held = withheld.size();
        long flows = 0;
        for (Generation g : new Generation[] {running, building}) {
            if (g != null) {
                held += g.comparator.held();
                flows += g.comparator.flows();
            }
        }
        stats.gauges(held, flows);
        return stats;
    }

    /** ARP and ping echoes let out uncompared while the output was held. */
    public long livenessPassedWhileHolding() {
        return livenessPassed;
    }

    public long staleSecondaryDropped() {
        return staleSecondaryDropped;
    }

    public long duplicatedToSecondary() {
        return duplicatedToSecondary;
    }

    public long replayedAtPause() {
        return replayedAtPause;
    }

    public void close() {
        fence();
    }
}
