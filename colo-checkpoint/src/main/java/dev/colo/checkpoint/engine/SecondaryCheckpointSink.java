package dev.colo.checkpoint.engine;

import dev.colo.checkpoint.dirty.DirtyPageScanner;
import dev.colo.checkpoint.dirty.ShadowMemory;
import dev.colo.checkpoint.link.LinkProtocol;
import dev.colo.checkpoint.link.proto.CheckpointAck;
import dev.colo.checkpoint.link.proto.CheckpointCommit;
import dev.colo.checkpoint.disk.DiskBatches;
import dev.colo.checkpoint.disk.DiskWriteLog;
import dev.colo.checkpoint.disk.ReplicaDisk;
import dev.colo.checkpoint.link.proto.DeviceStateForm;
import dev.colo.checkpoint.link.proto.DiskWrites;
import dev.colo.checkpoint.link.proto.Envelope;
import dev.colo.checkpoint.link.proto.Role;
import dev.colo.checkpoint.link.proto.Status;
import dev.colo.checkpoint.ship.CheckpointAssembler;
import dev.colo.checkpoint.ship.CorruptBatchException;
import dev.colo.checkpoint.ship.PageBatches;
import dev.colo.hypervisor.DeviceState;
import dev.colo.hypervisor.DomainRef;
import dev.colo.hypervisor.GuestRam;
import dev.colo.hypervisor.Hypervisor;
import dev.colo.hypervisor.HypervisorException;
import dev.colo.hypervisor.ReusableSvm;
import dev.colo.runtime.Lane;
import dev.colo.runtime.LifeCycle;
import dev.colo.runtime.NodeRuntime;
import java.io.UncheckedIOException;
import java.time.Duration;
import java.util.HashMap;
import java.util.Map;
import java.util.function.LongSupplier;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The secondary half of the engine. With SVM reuse (the default), the SVM is one QEMU process that
 * takes every checkpoint in place ({@link ReusableSvm}): it is stopped, its RAM is brought back to
 * the secondary's shadow (guest RAM as of the checkpoint, which undoes the SVM's own writes), the
 * checkpoint's devices are loaded and it runs on. Before it stops, it gets no more input and reads
 * what it was given, so nothing it already read reaches it twice. A full checkpoint (the first of a
 * pairing, after an abort) goes to a hot standby started with {@code -incoming defer}, its RAM
 * already filled from the shadow, which then replaces the old SVM; without reuse every checkpoint
 * does. Anything wrong before the SVM stops keeps it running and tells the primary why, with a
 * status of its own; a reused SVM that fails after it stopped is destroyed (the SVM is lost).
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
        /** The checkpoint is complete and verified and goes into the running SVM in place: it reads its last input. */
        RELOADING,
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

        /**
         * Checkpoint {@code seq} goes into the running SVM in place: give it no more input (keep
         * it for the SVM of {@code seq}), so that it can read what it has before it stops.
         */
        default void onSvmReloading(long seq) {
        }

        /** Polled during {@link #onSvmReloading}: how many frames written to the SVM it has not read; -1 unknown. */
        default int svmUnread(long seq) {
            return 0;
        }

        /** The in-place load of {@code seq} is given up before the SVM stopped: feed it again. */
        default void onSvmReloadAbandoned(long seq) {
        }

        /**
         * {@code svm} is about to run checkpoint {@code seq} by itself (a reusable load runs it as
         * it finishes): keep what it sends from now on for {@link #onSvmStarting}.
         */
        default void onSvmLoading(long seq, DomainRef svm) {
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
    private final boolean reuseSvm;
    private final DirtyPageScanner scanner;
    /** The running SVM's checkpoint channel when it takes checkpoints in place, else null. */
    private ReusableSvm inPlace;
    /** The running SVM's RAM, mapped while it takes checkpoints in place. */
    private GuestRam svmRam;
    /** The in-place load in hand: its device state and until when the SVM may take to read its input. */
    private byte[] reloadDevices;
    private long reloadDeadlineNs;
    /** The checkpoint the filled standby's RAM was copied at: a later in-place commit makes it stale. */
    private long committedSeq;
    private final Map<String, ReplicaDisk> disks;
    private final Map<String, Long> diskSizes;
    /** Why the copy of the disks made while pairing failed; the pairing cannot protect and must start again. */
    private String diskFailure;
    /** Guest RAM pre-copied into the shadow after the filled standby was filled: it must be filled again. */
    private boolean precopied;
    /** Why a pre-copied batch was refused: the checkpoint that builds on it cannot be taken. */
    private String precopyFailure;
    /** Pre-copy batches applied to the shadow; the first checkpoint after the pre-copy says how many were made. */
    private long precopyApplied;
    /** Copy batches written per disk (they come numbered without gaps). */
    private final Map<String, Long> copyBatches = new HashMap<>();

    /** How long a reused SVM may take to read the input it was given before it stops. */
    static final long DRAIN_NS = 250_000_000L;
    private static final long DRAIN_POLL_NS = 1_000_000L;

    /** Without SVM reuse: every checkpoint goes into a fresh standby. */
    public SecondaryCheckpointSink(String pair, NodeRuntime runtime, Hypervisor hv, StandbyFactory factory, long guestRamBytes,
            LinkPort link, LongSupplier term, Listener listener) {
        this(pair, runtime, hv, factory, guestRamBytes, link, term, listener, false, Map.of());
    }

    /**
     * @param reuseSvm load each checkpoint into the running SVM in place (standbys only for full checkpoints)
     * @param disks the secondary's copies of the PVM's replicated disks, by target name: the copy
     *     made while pairing is written into them as it comes, and each checkpoint's epochs while
     *     no SVM runs on them
     */
    public SecondaryCheckpointSink(String pair, NodeRuntime runtime, Hypervisor hv, StandbyFactory factory, long guestRamBytes,
            LinkPort link, LongSupplier term, Listener listener, boolean reuseSvm, Map<String, ReplicaDisk> disks) {
        this.reuseSvm = reuseSvm;
        this.disks = Map.copyOf(disks);
        Map<String, Long> sizes = new HashMap<>();
        disks.forEach((name, d) -> sizes.put(name, d.size()));
        this.diskSizes = Map.copyOf(sizes);
        this.scanner = new DirtyPageScanner(runtime.parallel());
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
                }, reuseSvm ? 1 : 2);
    }

    /** The single gate for every change of state. */
    private void state(State next, String why) {
        boolean ok = switch (state) {
            case IDLE -> next == State.ASSEMBLING || next == State.TOOK_OVER || next == State.CLOSED;
            case ASSEMBLING -> next == State.IDLE || next == State.ASSEMBLING || next == State.AWAITING_STANDBY || next == State.RELOADING
                    || next == State.TOOK_OVER || next == State.CLOSED;
            case RELOADING -> next == State.IDLE || next == State.ASSEMBLING || next == State.TOOK_OVER || next == State.CLOSED;
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
    public record View(State state, DomainRef svm, boolean svmInPlace) {}

    public View view() {
        try {
            return lane.call(() -> new View(state, svm, inPlace != null));
        } catch (Exception ex) {
            throw new IllegalStateException("checkpoint sink did not answer: " + ex.getMessage(), ex);
        }
    }

    public DomainRef currentSvm() {
        return view().svm();
    }

    /**
     * Promotion: the running SVM is the VM from now on and stays; a checkpoint in hand is dropped
     * (its SVM never ran, so the running one has every frame; one going in place either finished,
     * since it is one lane task, or is given up before the SVM stopped), and later checkpoint
     * messages are ignored. Returns the SVM (null if none ran yet) at once; the standbys are retired
     * and the SVM leaves COLO mode right after, on the sink's lane.
     */
    public DomainRef takeOver() {
        try {
            return lane.call(() -> {
                if (state == State.TOOK_OVER || state == State.CLOSED) {
                    return svm;
                }
                if (state == State.RELOADING) {
                    abandonReload("the SVM takes over");
                }
                if (assembling != null) {
                    listener.onCheckpointDropped(assembling.seq(), "the SVM took over");
                }
                assembling = null;
                pendingCommit = null;
                state(State.TOOK_OVER, "the SVM takes over");
                // After the answer: destroying standbys takes libvirt up to seconds, and the SVM
                // serves in COLO mode as well as out of it; the promotion must not wait for either.
                lane.execute(() -> {
                    pool.retireAll();
                    if (state == State.TOOK_OVER) {
                        releaseInPlace();
                    }
                });
                return svm;
            });
        } catch (Exception ex) {
            throw new IllegalStateException("sink did not hand over its SVM: " + ex, ex);
        }
    }

    /** The promoted SVM leaves QEMU's COLO mode and runs on as an ordinary VM; its mapping goes. */
    private void releaseInPlace() {
        if (inPlace == null) {
            return;
        }
        long t0 = runtime.nowNs();
        try {
            inPlace.release(QMP);
            log.atInfo().addKeyValue("pair", pair).addKeyValue("svm", svm.name())
                    .addKeyValue("release_ms", String.format("%.1f", (runtime.nowNs() - t0) / 1e6))
                    .log("SVM left its checkpoint channel and runs on as an ordinary VM");
        } catch (HypervisorException ex) {
            log.atWarn().addKeyValue("pair", pair).addKeyValue("svm", svm.name()).addKeyValue("reason", ex.getMessage())
                    .log("SVM did not confirm that it left its checkpoint channel; it keeps running");
        }
        inPlace = null;
        if (svmRam != null) {
            svmRam.close();
            svmRam = null;
        }
    }

    private void handle(Envelope e) {
        if (state == State.TOOK_OVER || state == State.CLOSED) {
            return;
        }
        if (state == State.RELOADING && (e.getBodyCase() == Envelope.BodyCase.CHECKPOINT_BEGIN
                || e.getBodyCase() == Envelope.BodyCase.CHECKPOINT_ABORT)) {
            // The primary gave up on the checkpoint the SVM is about to take: it never stopped.
            abandonReload(e.getBodyCase() == Envelope.BodyCase.CHECKPOINT_BEGIN ? "a newer checkpoint began" : "abandoned by the primary");
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
                case PRECOPY -> {
                    if (svm == null && state == State.IDLE && precopyFailure == null) {
                        try {
                            PageBatches.apply(PageBatches.verify(e.getPrecopy(), e.getPrecopy().getCheckpointSeq(),
                                    guestRamBytes / GuestRam.PAGE_SIZE), new ShadowRam(shadow));
                            precopied = true;
                            precopyApplied++;
                        } catch (CorruptBatchException ex) {
                            precopyFailure = ex.getMessage();
                        }
                    }
                }
                case DISK_WRITES -> {
                    DiskWrites d = e.getDiskWrites();
                    if (d.getSeed()) {
                        applyCopy(d);
                    } else if (state == State.ASSEMBLING && assembling != null && assemblyFailure == null
                            && d.getCheckpointSeq() == assembling.seq()) {
                        assembling.onDiskWrites(d);
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

    /** A piece of the disk copy made while pairing: no SVM exists yet, so it goes into the copy at once. */
    private void applyCopy(DiskWrites d) {
        if (diskFailure != null) {
            return;
        }
        ReplicaDisk disk = disks.get(d.getDisk());
        try {
            if (disk == null) {
                throw new CorruptBatchException("disk '" + d.getDisk() + "' is not replicated by this pairing");
            }
            if (svm != null) {
                throw new CorruptBatchException("disk copy of " + d.getDisk() + " arrived while an SVM runs on it");
            }
            long expected = copyBatches.getOrDefault(d.getDisk(), 0L);
            if (d.getSequence() != expected) {
                throw new CorruptBatchException("disk copy of " + d.getDisk() + " lost batches: batch " + d.getSequence() + " came where "
                        + expected + " was due");
            }
            copyBatches.put(d.getDisk(), expected + 1);
            for (DiskWriteLog.Extent x : DiskBatches.decode(d, disk.size())) {
                disk.apply(x);
            }
        } catch (CorruptBatchException | UncheckedIOException | IllegalArgumentException ex) {
            diskFailure = ex.getMessage();
            log.atError().addKeyValue("pair", pair).addKeyValue("disk", d.getDisk()).addKeyValue("reason", ex.getMessage())
                    .log("disk copy failed; this pairing cannot protect the VM, the primary must pair again");
        }
    }

    /** Writes a checkpoint's epochs into the disk copies and makes them durable. No SVM may run on them. */
    private void applyDisks(java.util.List<CheckpointAssembler.DiskWrite> writes) {
        for (CheckpointAssembler.DiskWrite w : writes) {
            disks.get(w.disk()).apply(w.extent());
        }
        for (ReplicaDisk d : disks.values()) {
            d.sync();
        }
    }

    private void onCommit(CheckpointCommit c) {
        long seq = c.getCheckpointSeq();
        if (diskFailure == null && assembling != null && assembling.seq() == seq) {
            assembling.diskCopyBatches().forEach((disk, sent) -> {
                long written = copyBatches.getOrDefault(disk, 0L);
                if (written != sent && diskFailure == null) {
                    diskFailure = "disk " + disk + ": the primary sent " + sent + " copy batches, " + written + " arrived";
                }
            });
        }
        if (diskFailure != null) {
            nack(seq, Status.NOT_PAIRED, "the copy of the disks made while pairing failed (" + diskFailure + "); pair again");
            drop(seq, "disk copy failed");
            return;
        }
        if (precopyFailure == null && assembling != null && assembling.seq() == seq && !assembling.full() && assembling.precopyBatches() > 0
                && assembling.precopyBatches() != precopyApplied) {
            // Batches sent into a link that dropped meanwhile never arrived: the shadow has holes.
            precopyFailure = "the primary made " + assembling.precopyBatches() + " batches, " + precopyApplied + " arrived";
        }
        if (precopyFailure != null && assembling != null && assembling.seq() == seq && !assembling.full()) {
            String why = precopyFailure;
            precopyFailure = null; // the full retry replaces every page
            nack(seq, Status.CORRUPT, "the RAM copied before this checkpoint was damaged (" + why + "); send it in full");
            drop(seq, "pre-copy damaged");
            return;
        }
        if (state != State.ASSEMBLING || assembling == null || assembling.seq() != seq || assemblyFailure != null) {
            nack(seq, Status.CORRUPT, assemblyFailure != null ? assemblyFailure : "commit for a checkpoint we never began");
            drop(seq, "refused");
            return;
        }
        pendingCommit = c;
        pendingSinceNs = runtime.nowNs();
        if (assembling.form() == DeviceStateForm.DEVICES_ONLY) {
            beginReload();
            return;
        }
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

    // --- a checkpoint in place ---

    private void beginReload() {
        long seq = pendingCommit.getCheckpointSeq();
        if (inPlace == null) {
            nack(seq, Status.LOAD_FAILED, "no SVM here takes checkpoints in place (it was replaced or lost); resend it in full");
            drop(seq, "no SVM to load in place");
            return;
        }
        try {
            reloadDevices = assembling.verify(pendingCommit, diskSizes);
        } catch (CorruptBatchException ex) {
            nack(seq, Status.CORRUPT, ex.getMessage());
            drop(seq, "corrupt");
            return;
        }
        state(State.RELOADING, "checkpoint " + seq + " goes into the running SVM");
        listener.onSvmReloading(seq);
        reloadDeadlineNs = runtime.nowNs() + DRAIN_NS;
        awaitDrained(seq);
    }

    /** Waits (on the lane's timer, never blocking it) until the SVM read the input it was given. */
    private void awaitDrained(long seq) {
        if (state != State.RELOADING || pendingCommit == null || pendingCommit.getCheckpointSeq() != seq) {
            return;
        }
        int unread = listener.svmUnread(seq);
        if (unread == 0) {
            reload(seq);
        } else if (runtime.nowNs() - reloadDeadlineNs > 0) {
            abandonReload("the SVM did not read its input within " + DRAIN_NS / 1_000_000 + " ms (" + (unread < 0 ? "its NIC cannot tell"
                    : unread + " frames unread") + ")");
            nack(seq, Status.LOAD_FAILED, "the SVM did not read its input in time; the SVM keeps running");
            drop(seq, "SVM did not drain");
        } else {
            lane.schedule(DRAIN_POLL_NS, life.guard(() -> awaitDrained(seq)));
        }
    }

    private void abandonReload(String why) {
        long seq = pendingCommit != null ? pendingCommit.getCheckpointSeq() : -1;
        log.atInfo().addKeyValue("pair", pair).addKeyValue("ckpt", seq).addKeyValue("reason", why)
                .log("in-place checkpoint given up before the SVM stopped; it runs on with its input");
        listener.onSvmReloadAbandoned(seq);
        reloadDevices = null;
        state(State.ASSEMBLING, "checkpoint " + seq + " not loaded in place: " + why);
    }

    /** Stop, bring the RAM to the checkpoint, load the devices, run: one lane task, so no takeover cuts into it. */
    private void reload(long seq) {
        long t0 = runtime.nowNs();
        long tStopped;
        long pages;
        try {
            inPlace.stop(QMP);
            tStopped = runtime.nowNs();
            // Stopped: QEMU drained the SVM's I/O, so the disk copies can move to the checkpoint
            // (QEMU's COLO load then empties the SVM's replication overlays).
            applyDisks(assembling.diskWrites());
            assembling.applyAgain(new ShadowRam(shadow));
            // The SVM's own writes since the last checkpoint and the checkpoint's pages, in one pass.
            pages = scanner.restore(shadow, svmRam);
            listener.onSvmLoading(seq, svm);
            inPlace.load(new DeviceState(reloadDevices), QMP);
        } catch (HypervisorException | IllegalStateException | UncheckedIOException | IllegalArgumentException ex) {
            svmBroken(seq, ex.getMessage());
            return;
        }
        long tLoaded = runtime.nowNs();
        listener.onSvmStarting(seq, svm);
        long readyNs = tLoaded - pendingSinceNs;
        assembling = null;
        pendingCommit = null;
        reloadDevices = null;
        committedSeq = seq;
        state(State.IDLE, "checkpoint " + seq + " runs in the SVM");
        listener.onSvmReplaced(seq, svm, null);
        link.send(envelope().setCheckpointAck(CheckpointAck.newBuilder().setCheckpointSeq(seq).setStatus(Status.OK).setSvmReadyNs(readyNs)
                .setSvmReusable(true).setLoadedInPlace(true)).build());
        log.atDebug().addKeyValue("pair", pair).addKeyValue("ckpt", seq).addKeyValue("svm", svm.name()).addKeyValue("restored_pages", pages)
                .addKeyValue("drain_ms", String.format("%.1f", (t0 - pendingSinceNs) / 1e6))
                .addKeyValue("stop_ms", String.format("%.1f", (tStopped - t0) / 1e6))
                .addKeyValue("load_ms", String.format("%.1f", (tLoaded - tStopped) / 1e6))
                .addKeyValue("svm_ready_ms", String.format("%.1f", readyNs / 1e6)).log("SVM took the checkpoint in place");
    }

    /** The SVM stopped for a checkpoint and cannot go on (it was not brought to the checkpoint): it is lost. */
    private void svmBroken(long seq, String why) {
        log.atError().addKeyValue("pair", pair).addKeyValue("ckpt", seq).addKeyValue("svm", svm.name()).addKeyValue("reason", why)
                .log("SVM stopped for a checkpoint cannot run on; it is destroyed and the primary must pair again");
        nack(seq, Status.LOAD_FAILED, "the SVM failed to take the checkpoint: " + why);
        drop(seq, "SVM lost in a checkpoint");
        DomainRef lost = svm;
        if (inPlace != null) {
            inPlace.close();
        }
        inPlace = null;
        GuestRam ram = svmRam;
        svmRam = null;
        svm = null;
        reloadDevices = null;
        // Its lifecycle event tells the node that the SVM is gone (SVM_LOST to the primary).
        pool.retire(lost, ram);
    }

    private void drop(long seq, String why) {
        assembling = null;
        pendingCommit = null;
        if (state == State.ASSEMBLING || state == State.AWAITING_STANDBY || state == State.RELOADING) {
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
            if (!assembling.full() && (reuseSvm && committedSeq > 0 || precopied)) {
                // Filled before checkpoints that went in place, or before the RAM pre-copy reached the
                // shadow: it must start from the shadow of now.
                pool.refill(standby.ram());
            }
            device = assembling.verify(c, diskSizes);
            assembling.applyAgain(standby.ram());
        } catch (CorruptBatchException ex) {
            pool.retire(standby.domain(), standby.ram());
            nack(seq, Status.CORRUPT, ex.getMessage());
            drop(seq, "corrupt");
            pool.wanted();
            return;
        }
        CheckpointAssembler done = assembling;
        ReusableSvm reusable = null;
        boolean oldSvmStopped = false;
        try {
            if (!done.diskWrites().isEmpty()) {
                // The disk copies move to this checkpoint: the SVM reading them must stop first,
                // and it cannot run again on them (its overlays were made against the old ones).
                if (svm != null) {
                    oldSvmStopped = true;
                    hv.pause(svm, QMP);
                }
                applyDisks(done.diskWrites());
            }
            if (reuseSvm) {
                // QEMU's COLO secondary runs the SVM as soon as it loaded: what it sends waits for onSvmStarting.
                listener.onSvmLoading(seq, standby.domain());
                reusable = hv.loadReusable(standby.domain(), new DeviceState(device), QMP);
                listener.onSvmStarting(seq, standby.domain());
            } else {
                standby.ram().close();
                hv.loadDeviceState(standby.domain(), new DeviceState(device), QMP);
                listener.onSvmStarting(seq, standby.domain());
                hv.resume(standby.domain(), QMP);
            }
        } catch (HypervisorException | UncheckedIOException | IllegalArgumentException ex) {
            pool.retire(standby.domain(), reuseSvm ? standby.ram() : null);
            if (oldSvmStopped) {
                log.atError().addKeyValue("pair", pair).addKeyValue("ckpt", seq).addKeyValue("standby", standby.domain().name())
                        .addKeyValue("reason", ex.getMessage()).log("standby failed to load the checkpoint after the disk copies moved on; "
                                + "the old SVM cannot run on them and is destroyed");
                svmBroken(seq, "the standby failed to load after the disks moved on: " + ex.getMessage());
                pool.wanted();
                return;
            }
            log.atError().addKeyValue("pair", pair).addKeyValue("ckpt", seq).addKeyValue("standby", standby.domain().name())
                    .addKeyValue("reason", ex.getMessage()).log("standby failed to load the checkpoint; the current SVM keeps running");
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
        committedSeq = seq;
        precopied = false;
        DomainRef retired = svm;
        ReusableSvm retiredChannel = inPlace;
        GuestRam retiredRam = svmRam;
        svm = standby.domain();
        inPlace = reusable;
        svmRam = reusable != null ? standby.ram() : null;
        listener.onSvmReplaced(seq, svm, retired);
        if (retiredChannel != null) {
            retiredChannel.close();
        }
        if (retired != null) {
            pool.retire(retired, retiredRam);
        }
        link.send(envelope().setCheckpointAck(CheckpointAck.newBuilder().setCheckpointSeq(seq).setStatus(Status.OK).setSvmReadyNs(readyNs)
                .setSvmReusable(reusable != null)).build());
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
                        if (state == State.RELOADING) {
                            listener.onSvmReloadAbandoned(pendingCommit != null ? pendingCommit.getCheckpointSeq() : -1);
                        }
                        state = State.CLOSED;
                        pool.retireAll();
                        if (inPlace != null) {
                            inPlace.close();
                            inPlace = null;
                        }
                        if (svm != null && !keepSvm) {
                            pool.retire(svm, svmRam);
                            svmRam = null;
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
