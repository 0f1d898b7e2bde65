package dev.colo.proxy.path;

import dev.colo.proxy.compare.CheckpointRequest;
import dev.colo.proxy.compare.CompareConfig;
import dev.colo.proxy.compare.CompareSink;
import dev.colo.proxy.compare.CompareStats;
import dev.colo.proxy.compare.Comparator;
import dev.colo.proxy.frame.Frame;
import java.util.function.Consumer;

/**
 * The primary's data path, pure and single-threaded. Client frames go to the PVM and, tagged with
 * the current epoch, over the link to the SVM. PVM output waits in the comparator until the SVM's
 * output for the same bytes arrives over the link. SVM output of an older epoch (from an SVM that a
 * checkpoint replaced) is dropped. Unprotected, PVM output goes straight to the client.
 */
public final class PrimaryPath {
    private final FrameSink toPvm;
    private final FrameSink toClient;
    private final EpochFrameSink toSecondary;
    private final Comparator comparator;
    private long epoch;
    /** A checkpoint to this epoch is starting: client frames go to its SVM too (0: none). */
    private long nextEpoch;
    private boolean protectedMode;
    /** The first checkpoint of a pairing is building an SVM: feed it input, compare once it runs. */
    private boolean feedingFirstSvm;
    private boolean fenced;
    private long staleSecondaryDropped;
    private long duplicatedToSecondary;

    public PrimaryPath(CompareConfig config, FrameSink toPvm, FrameSink toClient, EpochFrameSink toSecondary,
            Consumer<CheckpointRequest> onCheckpointNeeded, long epoch) {
        this.toPvm = toPvm;
        this.toClient = toClient;
        this.toSecondary = toSecondary;
        this.epoch = epoch;
        this.comparator = new Comparator(config, new CompareSink() {
            @Override
            public void release(Frame primary) {
                toClient.accept(primary);
            }

            @Override
            public void checkpoint(CheckpointRequest request) {
                onCheckpointNeeded.accept(request);
            }
        });
        comparator.setPassthrough(true, 0);
    }

    /** A frame from the LAN (tap) for the VM. */
    public void onClientFrame(Frame frame, long nowNs) {
        if (fenced) {
            frame.release();
            return;
        }
        if (protectedMode || feedingFirstSvm) {
            toSecondary.accept(epoch, new Frame(frame.data().retainedDuplicate(), frame.vnetHdrLen()));
            duplicatedToSecondary++;
        }
        if (nextEpoch > epoch) {
            toSecondary.accept(nextEpoch, new Frame(frame.data().retainedDuplicate(), frame.vnetHdrLen()));
            duplicatedToSecondary++;
        }
        toPvm.accept(frame);
    }

    /** A frame the PVM sent. */
    public void onPvmFrame(Frame frame, long nowNs) {
        if (fenced) {
            frame.release();
            return;
        }
        comparator.onPrimary(frame, nowNs);
    }

    /** A frame the SVM of {@code frameEpoch} sent, arriving over the link. */
    public void onSecondaryFrame(long frameEpoch, Frame frame, long nowNs) {
        if (!protectedMode || frameEpoch != epoch) {
            staleSecondaryDropped++;
            frame.release();
            return;
        }
        comparator.onSecondary(frame, nowNs);
    }

    /**
     * A checkpoint to {@code next} is about to pause the PVM. Whether a frame sent now reaches the
     * PVM before or after the pause cannot be known from here, so from now until the snapshot each
     * client frame also goes to the SVM that {@code next} will build. That SVM may see a frame twice
     * (TCP drops the duplicate) but never misses one the PVM processed after its snapshot.
     */
    public void onCheckpointStarting(long next) {
        if (next > epoch) {
            nextEpoch = next;
        }
    }

    /** The checkpoint to {@code abandoned} will not happen. */
    public void onCheckpointAbandoned(long abandoned) {
        if (nextEpoch == abandoned) {
            nextEpoch = 0;
        }
    }

    /**
     * The PVM was paused and snapshotted as checkpoint {@code newEpoch}: client frames from now on
     * belong to the SVM that will be built from it. On the first snapshot of a pairing output keeps
     * flowing uncompared until that SVM runs: holding it would protect nothing (there is no SVM to
     * take over yet) and would stall clients for the whole first, full checkpoint.
     */
    public void onSnapshot(long newEpoch, long nowNs) {
        if (newEpoch <= epoch) {
            throw new IllegalArgumentException("epochs only grow: " + newEpoch + " after " + epoch);
        }
        nextEpoch = 0;
        if (!protectedMode) {
            feedingFirstSvm = true;
        }
        epoch = newEpoch;
    }

    /** The secondary acknowledged the checkpoint: SVM = PVM, held output may leave. */
    public void onCheckpointCommitted(long committedEpoch, long nowNs) {
        if (committedEpoch != epoch) {
            return;
        }
        if (feedingFirstSvm) {
            feedingFirstSvm = false;
            protect(committedEpoch, nowNs); // the first SVM runs: compare from now on
            return;
        }
        comparator.onCheckpointCommitted(nowNs);
    }

    /** A secondary is protecting us from epoch {@code e} on: compare from now on. */
    public void protect(long e, long nowNs) {
        epoch = Math.max(epoch, e);
        protectedMode = true;
        comparator.setPassthrough(false, nowNs);
    }

    /** No secondary: release everything held and stop comparing. */
    public void unprotect(long nowNs) {
        protectedMode = false;
        feedingFirstSvm = false;
        nextEpoch = 0;
        comparator.setPassthrough(true, nowNs);
    }

    /**
     * Another node serves the VM now: nothing more reaches the LAN or the PVM from here, and held
     * output is dropped (the new primary's VM produces it again). Final.
     */
    public void fence() {
        if (!fenced) {
            fenced = true;
            protectedMode = false;
            feedingFirstSvm = false;
            comparator.close();
        }
    }

    public boolean fenced() {
        return fenced;
    }

    public void requestCheckpoint(String detail, long nowNs) {
        comparator.requestCheckpoint(detail, nowNs);
    }

    public void doWork(long nowNs) {
        if (!fenced) {
            comparator.doWork(nowNs);
        }
    }

    public long epoch() {
        return epoch;
    }

    public boolean isProtected() {
        return protectedMode;
    }

    public CompareStats stats() {
        return comparator.stats();
    }

    public long staleSecondaryDropped() {
        return staleSecondaryDropped;
    }

    public long duplicatedToSecondary() {
        return duplicatedToSecondary;
    }

    public void close() {
        fence();
    }
}
