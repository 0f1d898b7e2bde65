package dev.colo.proxy.path;

import dev.colo.proxy.frame.Frame;
import dev.colo.proxy.rewrite.TcpRewriter;
import java.util.ArrayDeque;
import java.util.Iterator;

/**
 * The secondary's data path, pure and single-threaded. Client frames arrive over the link tagged
 * with an epoch: those of the running SVM's epoch go in at once (ack shifted by the rewriter), those
 * of a newer epoch wait, in order, for the SVM being built from that checkpoint, and older ones are
 * dropped. SVM output goes back over the link unshifted (the comparator lines streams up by each
 * side's ISN). After promotion the SVM talks to the LAN directly with its seq shifted, so live
 * connections keep working.
 */
public final class SecondaryPath {
    private final FrameSink toSvm;
    private final EpochFrameSink toPrimary;
    private final FrameSink toClientDirect;
    private final TcpRewriter rewriter = new TcpRewriter();
    private final int maxBuffered;
    private final ArrayDeque<Tagged> buffered = new ArrayDeque<>();
    private long svmEpoch = -1;
    private boolean svmReady;
    private boolean promoted;
    private long bufferOverflowDropped;
    private long staleIngressDropped;
    private long selfAnnounceDropped;

    private record Tagged(long epoch, Frame frame) {}

    public SecondaryPath(FrameSink toSvm, EpochFrameSink toPrimary, FrameSink toClientDirect, int maxBuffered) {
        this.toSvm = toSvm;
        this.toPrimary = toPrimary;
        this.toClientDirect = toClientDirect;
        this.maxBuffered = maxBuffered;
    }

    /** A client frame over the link, for the SVM of {@code epoch}. */
    public void onIngress(long epoch, Frame frame) {
        if (promoted) {
            frame.release(); // the link is dead to us once we are the primary
            staleIngressDropped++;
            return;
        }
        if (epoch < svmEpoch) {
            staleIngressDropped++;
            frame.release();
            return;
        }
        if (epoch == svmEpoch && svmReady) {
            deliver(frame);
            return;
        }
        if (buffered.size() >= maxBuffered) {
            // The new SVM is late; dropping a client frame is safe for TCP (it retransmits) and
            // counted, never silent. The primary's timeout turns lasting trouble into a resync.
            bufferOverflowDropped++;
            frame.release();
            return;
        }
        buffered.addLast(new Tagged(epoch, frame));
    }

    /** A frame from the LAN side after promotion (the tap is ours now). */
    public void onClientFrame(Frame frame) {
        if (!promoted) {
            frame.release();
            return;
        }
        deliver(frame);
    }

    private void deliver(Frame frame) {
        rewriter.intoSvm(frame.ethernet());
        toSvm.accept(frame);
    }

    /** A frame the SVM sent. */
    public void onSvmFrame(Frame frame) {
        if (!promoted && isRarp(frame)) {
            // QEMU announces a VM that finished loading with RARP frames; they are the hypervisor's,
            // not the guest's, and the PVM never sends them, so comparing them would only age out.
            selfAnnounceDropped++;
            frame.release();
            return;
        }
        rewriter.outOfSvm(frame.ethernet(), promoted);
        if (promoted) {
            toClientDirect.accept(frame);
        } else {
            toPrimary.accept(svmEpoch, frame);
        }
    }

    /**
     * The SVM of {@code epoch} is running (a checkpoint was loaded into a standby, or the first SVM
     * started): it is a copy of the PVM, so offsets reset, and buffered frames of its epoch go in.
     */
    public void onSvmReplaced(long epoch) {
        svmEpoch = epoch;
        svmReady = true;
        rewriter.onCheckpoint();
        Iterator<Tagged> it = buffered.iterator();
        while (it.hasNext()) {
            Tagged t = it.next();
            if (t.epoch() < epoch) {
                staleIngressDropped++;
                t.frame().release();
                it.remove();
            } else if (t.epoch() == epoch) {
                it.remove();
                deliver(t.frame());
            }
        }
    }

    /** The SVM is being replaced: hold its input until the next one runs. */
    public void onSvmGone() {
        svmReady = false;
    }

    /** The primary is gone and we take over: the SVM talks to the LAN, offsets are kept. */
    public void promote() {
        promoted = true;
        for (Tagged t : buffered) {
            t.frame().release();
        }
        buffered.clear();
    }

    public boolean promoted() {
        return promoted;
    }

    public long svmEpoch() {
        return svmEpoch;
    }

    public int buffered() {
        return buffered.size();
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
        for (Tagged t : buffered) {
            t.frame().release();
        }
        buffered.clear();
    }
}
