package dev.colo.proxy.path;

import dev.colo.proxy.frame.Frame;
import dev.colo.proxy.rewrite.TcpRewriter;
import java.util.ArrayDeque;
import java.util.Iterator;
import java.util.List;

/**
 * The secondary's data path, pure and single-threaded. Client frames arrive over the link tagged
 * with the PVM segment that reads them; the SVM of generation g needs every frame of segment g or
 * later. So a frame goes into the running SVM at once (its ack shifted by the rewriter), and if its
 * segment is newer than the running SVM it is also kept, in order, for the SVM that checkpoint will
 * build. An abandoned checkpoint's frames are dropped. SVM output goes back over the link unshifted,
 * tagged with its generation. After promotion the SVM talks to the LAN directly with its seq
 * shifted, so live connections keep working.
 *
 * <p>Where the path is, is one {@link State}, changed only through {@link #state}.
 */
public final class SecondaryPath {
    public enum State {
        /** Not paired, or the first checkpoint has not run yet: frames are only kept. */
        NO_SVM,
        /** An SVM runs and follows the primary. */
        FOLLOWING,
        /**
         * The running SVM is about to take a checkpoint in place: it gets no more input, so that it
         * reads what it has before it stops (a frame left unread would reach the SVM of the
         * checkpoint, which must not see it). What arrives is kept.
         */
        RELOADING,
        /** The SVM took over: it serves the LAN directly. */
        PROMOTED,
        CLOSED
    }

    private final FrameSink toSvm;
    private final GenerationFrameSink toPrimary;
    private final FrameSink toClientDirect;
    private final TcpRewriter rewriter = new TcpRewriter();
    private final int maxBuffered;
    private final ArrayDeque<Kept> kept = new ArrayDeque<>();
    private final UnackedSvmOutput unacked;
    private final ClientNudges nudges = new ClientNudges();
    private State state = State.NO_SVM;
    private long generation;
    private long bufferOverflowDropped;
    private long staleIngressDropped;
    private long selfAnnounceDropped;

    /**
     * A frame kept for a later SVM: every SVM of a generation up to {@code segment} needs it.
     * {@code held}: while RELOADING, the running SVM would have had it too.
     */
    private record Kept(long segment, Frame frame, boolean held) {
        Kept(long segment, Frame frame) {
            this(segment, frame, false);
        }
    }

    public SecondaryPath(FrameSink toSvm, GenerationFrameSink toPrimary, FrameSink toClientDirect, int maxBuffered) {
        this(toSvm, toPrimary, toClientDirect, maxBuffered, DEFAULT_UNACKED_BYTES);
    }

    /** @param maxUnackedBytes how much of the SVM's unacknowledged output to keep for a takeover */
    public SecondaryPath(FrameSink toSvm, GenerationFrameSink toPrimary, FrameSink toClientDirect, int maxBuffered,
            long maxUnackedBytes) {
        this.toSvm = toSvm;
        this.toPrimary = toPrimary;
        this.toClientDirect = toClientDirect;
        this.maxBuffered = maxBuffered;
        this.unacked = new UnackedSvmOutput(maxUnackedBytes);
    }

    /** Enough for every small answer in flight and a few windows of a bulk transfer. */
    public static final long DEFAULT_UNACKED_BYTES = 8L << 20;

    private void state(State next) {
        boolean ok = switch (state) {
            case NO_SVM -> next == State.FOLLOWING || next == State.PROMOTED || next == State.CLOSED;
            case FOLLOWING -> next == State.FOLLOWING || next == State.RELOADING || next == State.NO_SVM || next == State.PROMOTED
                    || next == State.CLOSED;
            case RELOADING -> next == State.FOLLOWING || next == State.NO_SVM || next == State.PROMOTED || next == State.CLOSED;
            case PROMOTED -> next == State.CLOSED;
            case CLOSED -> false;
        };
        if (!ok) {
            throw new IllegalStateException("secondary path: illegal transition " + state + " -> " + next);
        }
        state = next;
    }

    public State state() {
        return state;
    }

    /** A client frame over the link, read by the PVM in {@code segment}. */
    public void onIngress(long segment, boolean nextSvmOnly, Frame frame) {
        if (state == State.PROMOTED || state == State.CLOSED) {
            frame.release(); // the link is dead to us once we serve the VM
            staleIngressDropped++;
            return;
        }
        boolean forRunning = state == State.FOLLOWING && !nextSvmOnly && segment >= generation;
        boolean forLater = state == State.NO_SVM || segment > generation;
        if (state == State.RELOADING) {
            boolean held = !nextSvmOnly && segment >= generation;
            if ((held || forLater) && kept.size() < maxBuffered) {
                kept.addLast(new Kept(segment, frame, held));
            } else {
                if (held || forLater) {
                    bufferOverflowDropped++;
                } else {
                    staleIngressDropped++;
                }
                frame.release();
            }
            return;
        }
        if (forLater && kept.size() >= maxBuffered) {
            // The next SVM is late; a frame it misses only costs a retransmission: the primary
            // releases no acknowledgement the SVM has not given itself.
            bufferOverflowDropped++;
            forLater = false;
        }
        if (forRunning && forLater) {
            // A copy, not a shared view: the rewriter edits the running SVM's frame in place, with
            // that SVM's offsets, and the next SVM must get the frame as the client sent it.
            kept.addLast(new Kept(segment, copy(frame)));
            deliver(frame);
        } else if (forRunning) {
            deliver(frame);
        } else if (forLater) {
            kept.addLast(new Kept(segment, frame));
        } else {
            staleIngressDropped++;
            frame.release();
        }
    }

    /** A frame from the LAN side after promotion (the tap is ours now). */
    public void onClientFrame(Frame frame) {
        if (state != State.PROMOTED) {
            frame.release();
            return;
        }
        deliver(frame);
    }

    private static Frame copy(Frame f) {
        return new Frame(f.data().copy(), f.vnetHdrLen());
    }

    private void deliver(Frame frame) {
        rewriter.intoSvm(frame.ethernet());
        if (state == State.FOLLOWING) {
            unacked.onClientInput(frame);
            nudges.onClientInput(frame);
        }
        toSvm.accept(frame);
    }

    /** A frame the running SVM sent. */
    public void onSvmFrame(Frame frame) {
        if (state != State.PROMOTED && isRarp(frame)) {
            // QEMU announces a VM that finished loading with RARP frames; they are the hypervisor's,
            // not the guest's, and the PVM never sends them, so comparing them would only age out.
            selfAnnounceDropped++;
            frame.release();
            return;
        }
        rewriter.outOfSvm(frame.ethernet(), state == State.PROMOTED);
        switch (state) {
            case PROMOTED -> toClientDirect.accept(frame);
            case FOLLOWING, RELOADING -> {
                unacked.onSvmOutput(frame);
                nudges.onSvmOutput(frame);
                toPrimary.accept(generation, frame);
            }
            default -> frame.release();
        }
    }

    /**
     * The SVM of {@code seq} is about to run (a checkpoint was loaded into a standby, or the first
     * SVM of a pairing): it is a copy of the PVM at snapshot {@code seq}, so offsets reset, and the
     * frames kept for it go in, in order. Called before it runs, so its first output finds its way.
     */
    public void onSvmStarting(long seq) {
        if (state == State.PROMOTED || state == State.CLOSED) {
            return;
        }
        generation = seq;
        state(State.FOLLOWING);
        rewriter.onCheckpoint();
        unacked.clear();
        nudges.clear();
        Iterator<Kept> it = kept.iterator();
        while (it.hasNext()) {
            Kept k = it.next();
            if (k.segment() < seq) {
                staleIngressDropped++;
                k.frame().release();
                it.remove();
            } else if (k.segment() == seq) {
                it.remove();
                deliver(k.frame());
            } else {
                deliver(copy(k.frame()));
            }
        }
    }

    /** The running SVM will take checkpoint {@code seq} in place: from now on its input is kept, not delivered. */
    public void onSvmReloading(long seq) {
        if (state == State.FOLLOWING) {
            state(State.RELOADING);
        }
    }

    /** The in-place checkpoint was given up before the SVM stopped: it gets what was held for it, in order. */
    public void onSvmReloadAbandoned() {
        if (state != State.RELOADING) {
            return;
        }
        state(State.FOLLOWING);
        int n = kept.size();
        for (int i = 0; i < n; i++) {
            Kept k = kept.pollFirst();
            if (!k.held()) {
                kept.addLast(k);
            } else if (k.segment() > generation) {
                kept.addLast(new Kept(k.segment(), k.frame()));
                deliver(copy(k.frame()));
            } else {
                deliver(k.frame());
            }
        }
    }

    /** Checkpoint {@code seq} will not become an SVM: what was kept for it alone goes. */
    public void onCheckpointDropped(long seq) {
        Iterator<Kept> it = kept.iterator();
        while (it.hasNext()) {
            Kept k = it.next();
            if (k.segment() == seq) {
                staleIngressDropped++;
                k.frame().release();
                it.remove();
            }
        }
    }

    /** Protection ended (unpaired): no SVM follows any more. */
    public void onUnpaired() {
        if (state == State.FOLLOWING || state == State.RELOADING) {
            state(State.NO_SVM);
        }
        releaseKept();
        unacked.clear();
    }

    /** The primary is gone and we take over: the SVM talks to the LAN, offsets are kept. */
    public void promote() {
        if (state == State.PROMOTED || state == State.CLOSED) {
            return;
        }
        onSvmReloadAbandoned(); // the SVM never stopped: it must have every frame first
        boolean hadSvm = state == State.FOLLOWING;
        state(State.PROMOTED);
        releaseKept();
        if (!hadSvm) {
            unacked.clear();
            nudges.clear();
        }
    }

    /**
     * Right after promotion: the SVM's segments that no client acknowledged go to the LAN now,
     * shifted like all its output, instead of when its backed-off retransmission timer fires.
     * Returns how many went.
     */
    public int resendUnacked() {
        if (state != State.PROMOTED) {
            return 0;
        }
        List<Frame> frames = unacked.drain();
        for (Frame f : frames) {
            rewriter.outOfSvm(f.ethernet(), true);
            toClientDirect.accept(f);
        }
        return frames.size();
    }

    public UnackedSvmOutput unacked() {
        return unacked;
    }

    /**
     * Right after promotion, after {@link #resendUnacked}: duplicate ACKs from the SVM to each
     * client it talked to since its checkpoint, so that one whose request was lost meanwhile sends it
     * again now rather than when its backed-off timer fires ({@link ClientNudges}). Returns how many
     * connections were nudged.
     */
    public int nudgeClients() {
        if (state != State.PROMOTED) {
            return 0;
        }
        int connections = nudges.connections();
        for (Frame f : nudges.drain()) {
            rewriter.outOfSvm(f.ethernet(), true);
            toClientDirect.accept(f);
        }
        return connections;
    }

    private void releaseKept() {
        for (Kept k : kept) {
            k.frame().release();
        }
        kept.clear();
    }

    public boolean promoted() {
        return state == State.PROMOTED;
    }

    /** The generation of the running SVM (0 before the first). */
    public long generation() {
        return generation;
    }

    public int buffered() {
        return kept.size();
    }

    public long bufferOverflowDropped() {
        return bufferOverflowDropped;
    }

    private static boolean isRarp(Frame frame) {
        var eth = frame.ethernet();
        return eth.readableBytes() >= 14 && eth.getUnsignedShort(eth.readerIndex() + 12) == 0x8035;
    }

    public long selfAnnounceDropped() {
        return selfAnnounceDropped;
    }

    public long staleIngressDropped() {
        return staleIngressDropped;
    }

    public TcpRewriter rewriter() {
        return rewriter;
    }

    public void close() {
        if (state != State.CLOSED) {
            state(State.CLOSED);
        }
        releaseKept();
        unacked.clear();
    }
}
