package dev.colo.checkpoint.engine;

import dev.colo.checkpoint.dirty.ShadowMemory;
import dev.colo.checkpoint.link.LinkProtocol;
import dev.colo.checkpoint.link.proto.CheckpointAck;
import dev.colo.checkpoint.link.proto.CheckpointCommit;
import dev.colo.checkpoint.link.proto.Envelope;
import dev.colo.checkpoint.link.proto.Role;
import dev.colo.checkpoint.link.proto.Status;
import dev.colo.checkpoint.ship.CheckpointAssembler;
import dev.colo.checkpoint.ship.CorruptBatchException;
import dev.colo.hypervisor.DeviceState;
import dev.colo.hypervisor.DomainRef;
import dev.colo.hypervisor.GuestRam;
import dev.colo.hypervisor.Hypervisor;
import dev.colo.hypervisor.HypervisorException;
import dev.colo.runtime.Lane;
import dev.colo.runtime.LifeCycle;
import dev.colo.runtime.NodeRuntime;
import java.time.Duration;
import java.util.function.LongSupplier;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The secondary half of the engine. It keeps a hot standby started with {@code -incoming defer} and
 * its RAM already filled from the secondary's shadow (guest RAM as of the last checkpoint), so a
 * checkpoint only writes the dirty pages, loads device state and runs it. The new SVM then replaces
 * the old one, which is retired. Anything wrong keeps the old SVM and tells the primary why, with a
 * status of its own.
 *
 * <p>Where a checkpoint is, is one {@link State} changed only through {@link #state}; the
 * standbys' pipeline is a {@link StandbyPool}. Everything runs on the sink's lane; standbys start on
 * a lane of their own, since a QEMU start takes far longer than a checkpoint.
 */
public final class SecondaryCheckpointSink implements AutoCloseable {
    private static final Logger log = LoggerFactory.getLogger(SecondaryCheckpointSink.class);
    private static final Duration QMP = Duration.ofSeconds(10);

    /** Where the sink is with the checkpoint in hand. */
    public enum State {
        /** No checkpoint in hand; the running SVM (if any) serves. */
        IDLE,
        /** Pages and device state of one checkpoint are arriving. */
        ASSEMBLING,
        /** The checkpoint is complete and verified, but no standby is filled yet. */
        AWAITING_STANDBY,
        /** The SVM took over: checkpoint messages are ignored. Final but for close. */
        TOOK_OVER,
        CLOSED
    }

    /** What the sink tells the node. Called on the sink's lane. */
    public interface Listener {
        /** A standby started (e.g. to plug its network in). */
        default void onStandbyStarted(DomainRef standby) {
        }

        /**
         * {@code standby} holds checkpoint {@code seq} and is about to run: route its traffic now,
         * so that nothing it sends in its first moments is lost. Called before {@code cont}.
         */
        default void onSvmStarting(long seq, DomainRef standby) {
        }

        /** {@code svm} runs as the SVM of generation {@code seq}; {@code retired} is gone. */
        void onSvmReplaced(long seq, DomainRef svm, DomainRef retired);

        /** Checkpoint {@code seq} will not become an SVM: drop what was kept for it. */
        default void onCheckpointDropped(long seq, String why) {
        }
    }

    /** Makes standbys: the node owns their definitions and their NIC sockets. */
    public interface StandbyFactory {
        /** The libvirt XML of standby number {@code n}: fresh name and UUID, {@code -incoming defer}, shared RAM. */
        String define(long n);

        /** {@code d} is gone (retired, or it failed to start): release whatever {@link #define} opened for it. */
        void retired(DomainRef d);
    }

    private final String pair;
    private final Hypervisor hv;
    private final long guestRamBytes;
    private final LinkPort link;
    private final Listener listener;
    private final StandbyFactory factory;
    private final LongSupplier term;
    private final NodeRuntime runtime;
    private final Lane lane;
    private final LifeCycle life = new LifeCycle("checkpoint sink");
    private final StandbyPool pool;
    private State state = State.IDLE;
    private ShadowMemory shadow;
    private DomainRef svm;
    private CheckpointAssembler assembling;
    private String assemblyFailure;
    private CheckpointCommit pendingCommit;
    private long pendingSinceNs;

    public SecondaryCheckpointSink(String pair, NodeRuntime runtime, Hypervisor hv, StandbyFactory factory, long guestRamBytes,
            LinkPort link, LongSupplier term, Listener listener) {
        this.pair = pair;
        this.runtime = runtime;
        this.hv = hv;
        this.factory = factory;
        this.guestRamBytes = guestRamBytes;
        this.link = link;
        this.term = term;
        this.listener = listener;
        this.lane = runtime.lane("sink");
        this.pool = new StandbyPool(pair, hv, factory, guestRamBytes, lane, runtime.lane("standby-start"), life,
                new StandbyPool.Events() {
                    @Override
                    public void started(DomainRef standby) {
                        listener.onStandbyStarted(standby);
                    }

                    @Override
                    public void filled() {
                        onStandbyFilled();
                    }

                    @Override
                    public void failed() {
                        onStandbyFailed();
                    }
                });
    }

    /** The single gate for every change of state. */
    private void state(State next, String why) {
        boolean ok = switch (state) {
            case IDLE -> next == State.ASSEMBLING || next == State.TOOK_OVER || next == State.CLOSED;
            case ASSEMBLING -> next == State.IDLE || next == State.ASSEMBLING || next == State.AWAITING_STANDBY || next == State.TOOK_OVER
                    || next == State.CLOSED;
            case AWAITING_STANDBY -> next == State.IDLE || next == State.ASSEMBLING || next == State.TOOK_OVER || next == State.CLOSED;
            case TOOK_OVER -> next == State.CLOSED;
            case CLOSED -> false;
        };
        if (!ok) {
            throw new IllegalStateException("checkpoint sink: illegal transition " + state + " -> " + next + " (" + why + ")");
        }
        log.atDebug().addKeyValue("pair", pair).addKeyValue("from", state).addKeyValue("to", next).addKeyValue("reason", why)
                .log("checkpoint sink state changed");
        state = next;
    }

    public void start() {
        life.transition(LifeCycle.State.STARTING);
        lane.execute(life.guard(() -> {
            shadow = new ShadowMemory(guestRamBytes, 1 << 30 < guestRamBytes ? 1 << 30 : (int) guestRamBytes);
            pool.start(shadow);
            life.tryTransition(LifeCycle.State.RUNNING);
        }));
    }

    /** Checkpoint messages from the primary, in order. */
    public void onLinkMessage(Envelope e) {
        lane.execute(life.guard(() -> handle(e)));
    }

    /** The running SVM and the sink's state, read on its lane. */
    public record View(State state, DomainRef svm) {}

    public View view() {
        try {
            return lane.call(() -> new View(state, svm));
        } catch (Exception ex) {
            throw new IllegalStateException("checkpoint sink did not answer: " + ex.getMessage(), ex);
        }
    }

    public DomainRef currentSvm() {
        return view().svm();
    }

    /**
     * Promotion: the running SVM is the VM from now on and stays; a checkpoint in hand is dropped
     * (its SVM never ran, so the running one has every frame), standbys are retired, and later
     * checkpoint messages are ignored. Returns the SVM (null if none ran yet).
     */
    public DomainRef takeOver() {
        try {
            return lane.call(() -> {
                if (state == State.TOOK_OVER || state == State.CLOSED) {
                    return svm;
                }
                if (assembling != null) {
                    listener.onCheckpointDropped(assembling.seq(), "the SVM took over");
                }
                assembling = null;
                pendingCommit = null;
                state(State.TOOK_OVER, "the SVM takes over");
                pool.retireAll();
                return svm;
            });
        } catch (Exception ex) {
            throw new IllegalStateException("sink did not hand over its SVM: " + ex, ex);
        }
    }

    private void handle(Envelope e) {
        if (state == State.TOOK_OVER || state == State.CLOSED) {
            return;
        }
        try {
            switch (e.getBodyCase()) {
                case CHECKPOINT_BEGIN -> {
                    if (assembling != null) {
                        listener.onCheckpointDropped(assembling.seq(), "a newer checkpoint began");
                    }
                    pendingCommit = null;
                    assemblyFailure = null;
                    assembling = null;
                    state(State.ASSEMBLING, "checkpoint " + e.getCheckpointBegin().getCheckpointSeq() + " began");
                    assembling = new CheckpointAssembler(e.getCheckpointBegin(), guestRamBytes);
                }
                case PAGES -> {
                    if (state == State.ASSEMBLING && assembling != null && assemblyFailure == null
                            && e.getPages().getCheckpointSeq() == assembling.seq()) {
                        assembling.onBatch(e.getPages());
                    }
                }
                case DEVICE_STATE -> {
                    if (state == State.ASSEMBLING && assembling != null && assemblyFailure == null
                            && e.getDeviceState().getCheckpointSeq() == assembling.seq()) {
                        assembling.onDeviceState(e.getDeviceState());
                    }
                }
                case CHECKPOINT_COMMIT -> onCommit(e.getCheckpointCommit());
                case CHECKPOINT_ABORT -> {
                    long seq = e.getCheckpointAbort().getCheckpointSeq();
                    log.atInfo().addKeyValue("pair", pair).addKeyValue("ckpt", seq).addKeyValue("reason", e.getCheckpointAbort().getReason())
                            .log("primary abandoned the checkpoint, current SVM stays");
                    if (assembling != null && assembling.seq() == seq) {
                        assembling = null;
                        pendingCommit = null;
                        state(State.IDLE, "checkpoint " + seq + " abandoned by the primary");
                    }
                    listener.onCheckpointDropped(seq, "abandoned by the primary: " + e.getCheckpointAbort().getReason());
                }
                default -> {
                    // Other messages belong to the node (heartbeats, frames).
                }
            }
        } catch (CorruptBatchException ex) {
            assemblyFailure = ex.getMessage();
        }
    }

    private void onCommit(CheckpointCommit c) {
        long seq = c.getCheckpointSeq();
        if (state != State.ASSEMBLING || assembling == null || assembling.seq() != seq || assemblyFailure != null) {
            nack(seq, Status.CORRUPT, assemblyFailure != null ? assemblyFailure : "commit for a checkpoint we never began");
            drop(seq, "refused");
            return;
        }
        pendingCommit = c;
        pendingSinceNs = runtime.nowNs();
        if (!pool.hasFilled()) {
            state(State.AWAITING_STANDBY, "checkpoint " + seq + " complete, waiting for a filled standby");
            pool.wanted();
            if (!pool.mayStillDeliver()) {
                nack(seq, Status.NO_STANDBY, "no standby could be started; see the secondary's log");
                drop(seq, "no standby");
            }
            return;
        }
        load();
    }

    /** A standby is filled: a commit that waited for it goes on. */
    private void onStandbyFilled() {
        if (state == State.AWAITING_STANDBY) {
            load();
        }
    }

    /** Failed to start a standby while a commit waits for one. */
    private void onStandbyFailed() {
        if (state == State.AWAITING_STANDBY && pendingCommit != null) {
            long seq = pendingCommit.getCheckpointSeq();
            nack(seq, Status.NO_STANDBY, "no standby could be started; see the secondary's log");
            drop(seq, "no standby");
        }
    }

    private void drop(long seq, String why) {
        assembling = null;
        pendingCommit = null;
        if (state == State.ASSEMBLING || state == State.AWAITING_STANDBY) {
            state(State.IDLE, "checkpoint " + seq + " " + why);
        }
        listener.onCheckpointDropped(seq, why);
    }

    private void load() {
        CheckpointCommit c = pendingCommit;
        long seq = c.getCheckpointSeq();
        StandbyPool.Filled standby = pool.takeFilled();
        byte[] device;
        try {
            device = assembling.commit(c, standby.ram());
        } catch (CorruptBatchException ex) {
            pool.retire(standby.domain(), standby.ram());
            nack(seq, Status.CORRUPT, ex.getMessage());
            drop(seq, "corrupt");
            pool.wanted();
            return;
        }
        CheckpointAssembler done = assembling;
        try {
            standby.ram().close();
            hv.loadDeviceState(standby.domain(), new DeviceState(device), QMP);
            listener.onSvmStarting(seq, standby.domain());
            hv.resume(standby.domain(), QMP);
        } catch (HypervisorException ex) {
            log.atError().addKeyValue("pair", pair).addKeyValue("ckpt", seq).addKeyValue("standby", standby.domain().name())
                    .addKeyValue("reason", ex.getMessage()).log("standby failed to load the checkpoint; the current SVM keeps running");
            pool.retire(standby.domain(), null);
            nack(seq, Status.LOAD_FAILED, "standby failed to load: " + ex.getMessage());
            drop(seq, "load failed");
            pool.wanted();
            return;
        }
        long readyNs = runtime.nowNs() - pendingSinceNs;
        // The shadow follows: the next standby is filled from it.
        done.applyAgain(new ShadowRam(shadow));
        assembling = null;
        pendingCommit = null;
        state(State.IDLE, "checkpoint " + seq + " runs as the SVM");
        DomainRef retired = svm;
        svm = standby.domain();
        listener.onSvmReplaced(seq, svm, retired);
        if (retired != null) {
            pool.retire(retired, null);
        }
        link.send(envelope().setCheckpointAck(CheckpointAck.newBuilder().setCheckpointSeq(seq).setStatus(Status.OK).setSvmReadyNs(readyNs))
                .build());
        log.atInfo().addKeyValue("pair", pair).addKeyValue("ckpt", seq).addKeyValue("svm", svm.name())
                .addKeyValue("svm_ready_ms", String.format("%.1f", readyNs / 1e6)).log("SVM replaced by the checkpoint's standby");
        pool.wanted();
    }

    private void nack(long seq, Status status, String why) {
        log.atWarn().addKeyValue("pair", pair).addKeyValue("ckpt", seq).addKeyValue("status", status).addKeyValue("reason", why)
                .log("checkpoint refused, current SVM keeps running");
        link.send(envelope().setCheckpointAck(CheckpointAck.newBuilder().setCheckpointSeq(seq).setStatus(status).setDetail(why)).build());
    }

    private Envelope.Builder envelope() {
        return Envelope.newBuilder().setProtocolVersion(LinkProtocol.VERSION).setPair(pair).setTerm(term.getAsLong()).setRole(Role.SECONDARY);
    }

    /** Retires the standbys and, unless it took over, the SVM. Waits for the sink's lane. */
    @Override
    public void close() {
        life.closeOnce(() -> {
            try {
                lane.call(() -> {
                    if (state != State.CLOSED) {
                        boolean keepSvm = state == State.TOOK_OVER;
                        state = State.CLOSED;
                        pool.retireAll();
                        if (svm != null && !keepSvm) {
                            pool.retire(svm, null);
                        }
                    }
                    return null;
                });
            } catch (Exception e) {
                log.atWarn().addKeyValue("pair", pair).addKeyValue("reason", e.toString()).log("unclean sink shutdown");
            }
        });
    }
}
