package dev.colo.checkpoint.engine;

import com.google.protobuf.ByteString;
import dev.colo.checkpoint.coordinator.CheckpointActions;
import dev.colo.checkpoint.coordinator.CheckpointCoordinator;
import dev.colo.checkpoint.coordinator.CheckpointRecord;
import dev.colo.checkpoint.coordinator.CoordinatorConfig;
import dev.colo.checkpoint.coordinator.Step;
import dev.colo.checkpoint.coordinator.Trigger;
import dev.colo.checkpoint.dirty.DirtyPageScanner;
import dev.colo.checkpoint.dirty.ShadowMemory;
import dev.colo.checkpoint.link.LinkProtocol;
import dev.colo.checkpoint.link.proto.CheckpointAbort;
import dev.colo.checkpoint.link.proto.CheckpointBegin;
import dev.colo.checkpoint.link.proto.CheckpointCommit;
import dev.colo.checkpoint.link.proto.DeviceState;
import dev.colo.checkpoint.link.proto.DeviceStateForm;
import dev.colo.checkpoint.link.proto.DiskWrites;
import dev.colo.checkpoint.link.proto.Envelope;
import dev.colo.checkpoint.link.proto.PageBatch;
import dev.colo.checkpoint.link.proto.Role;
import dev.colo.checkpoint.link.proto.Status;
import dev.colo.checkpoint.ship.Codec;
import dev.colo.checkpoint.ship.PageBatches;
import dev.colo.hypervisor.DomainRef;
import dev.colo.hypervisor.GuestRam;
import dev.colo.hypervisor.Hypervisor;
import dev.colo.runtime.Cancellable;
import dev.colo.runtime.Lane;
import dev.colo.runtime.LifeCycle;
import dev.colo.runtime.NodeRuntime;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;
import java.util.function.LongSupplier;
import java.util.stream.LongStream;
import java.util.zip.CRC32C;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The primary half of the engine: runs the coordinator on its own lane and carries out its
 * actions. Hypervisor calls and page work run on the worker lane; their outcomes go back to the
 * coordinator as events. The shadow holds guest RAM as of the last checkpoint; pages are shipped
 * from it after the PVM resumed, so the pause covers only the scan and the device-state save.
 * Lanes and the clock come from the node's runtime; after {@link #close()} every late event is
 * refused by the engine's lifecycle.
 */
public final class PrimaryCheckpointEngine implements CheckpointActions, AutoCloseable {
    private static final Logger log = LoggerFactory.getLogger(PrimaryCheckpointEngine.class);
    private static final Duration QMP = Duration.ofSeconds(5);
    private static final long SEND_RETRY_NS = 1_000_000L;
    /** Rounds of copying guest RAM while the PVM runs, before the first checkpoint of a pairing. */
    static final int PRECOPY_ROUNDS = 5;

    /** What the engine tells the node (the proxy's path, metrics). */
    public interface Listener {
        /**
         * Checkpoint {@code seq} is about to pause the PVM; called on the engine's worker and the
         * pause waits for it (the proxy starts feeding the next SVM before the pause).
         */
        default void onPausing(long seq) {
        }

        /** The PVM is paused: its output from now on is not covered by checkpoint {@code seq}. */
        default void onSnapshot(long seq) {
        }

        /** The secondary runs the SVM of {@code seq}: PVM output produced before its snapshot may leave. */
        default void onRelease(long seq) {
        }

        /** {@code seq} was given up; the running SVM stays and keeps its input. */
        default void onAbandon(long seq, String reason) {
        }

        /** A switchover committed at {@code seq}: the PVM stays paused, the secondary must take over. */
        default void onHandOver(long seq) {
        }

        /** The figures of one finished attempt. */
        default void onRecord(CheckpointRecord record) {
        }
    }

    private final String pair;
    private final Hypervisor hv;
    private final DomainRef pvm;
    private final LinkPort link;
    private final Codec codec;
    private final Listener listener;
    private final NodeRuntime runtime;
    private final Lane coordinatorLane;
    private final Lane worker;
    private final LifeCycle life = new LifeCycle("checkpoint engine");
    private final CheckpointCoordinator coordinator;
    private final LongSupplier term;
    private final DiskEpochs disks;
    /** The number the first checkpoint of this engine will have (the pre-copy is labelled with it). */
    private final long firstSeq;
    private Cancellable ticker = Cancellable.NONE;
    /** The checkpoint being shipped; a shipment that waits for the link stops once it was abandoned. */
    private volatile long shippingSeq = -1;
    private GuestRam ram;
    private ShadowMemory shadow;
    private DirtyPageScanner scanner;
    private long[] capturedPages = new long[0];
    private byte[] capturedDevice = new byte[0];
    private boolean capturedFull;
    private DeviceStateForm capturedForm = DeviceStateForm.MIGRATION_STREAM;
    /** Pre-copy batches made (worker lane); the first checkpoint tells the secondary, which counts what arrived. */
    private long precopyBatches;
    /**
     * The secondary's last acknowledgement said its SVM takes the next checkpoint in place, so the
     * PVM saves only its devices (a few ms) instead of the whole migration stream. Any failure
     * clears it: the retry is full and goes to a fresh standby.
     */
    private volatile boolean secondaryReusesSvm;
    /** Checkpoints the secondary loaded in place, for the committed line; coordinator lane. */
    private final java.util.Set<Long> loadedInPlace = java.util.concurrent.ConcurrentHashMap.newKeySet();

    /**
     * @param lastSeq the pair's last checkpoint so far; this engine's first (full) checkpoint is
     *     {@code lastSeq + 1}
     * @param term the node's current failover term, stamped on every message
     */
    public PrimaryCheckpointEngine(String pair, NodeRuntime runtime, Hypervisor hv, DomainRef pvm, LinkPort link, Codec codec,
            CoordinatorConfig config, Listener listener, long lastSeq, LongSupplier term) {
        this(pair, runtime, hv, pvm, link, codec, config, listener, lastSeq, term, DiskEpochs.NONE);
    }

    /** @param disks the PVM's replicated disks: each checkpoint cuts them at its pause and carries their epochs */
    public PrimaryCheckpointEngine(String pair, NodeRuntime runtime, Hypervisor hv, DomainRef pvm, LinkPort link, Codec codec,
            CoordinatorConfig config, Listener listener, long lastSeq, LongSupplier term, DiskEpochs disks) {
        this.disks = disks;
        this.firstSeq = lastSeq + 1;
        this.pair = pair;
        this.runtime = runtime;
        this.hv = hv;
        this.pvm = pvm;
        this.link = link;
        this.codec = codec;
        this.listener = listener;
        this.term = term;
        this.coordinatorLane = runtime.lane("ckpt-coordinator");
        this.worker = runtime.lane("ckpt-worker");
        // A checkpoint is one event for an operator (its "checkpoint committed" or "aborted" line);
        // its steps are debug lines, except the ones that say something went wrong. They are also
        // written inside the pause, where every synchronous console write counts.
        this.coordinator = new CheckpointCoordinator(config, this, t -> {
            boolean trouble = t.to() == CheckpointCoordinator.State.ABORT_RESUMING || t.to() == CheckpointCoordinator.State.BACKOFF;
            (trouble ? log.atWarn() : log.atDebug()).addKeyValue("pair", pair).addKeyValue("ckpt", t.seq()).addKeyValue("from", t.from())
                    .addKeyValue("to", t.to()).addKeyValue("reason", t.reason()).log("checkpoint state changed");
        }, lastSeq);
    }

    private long now() {
        return runtime.nowNs();
    }

    /** Maps the PVM's RAM and starts protection with a full first checkpoint. */
    public void start() {
        life.transition(LifeCycle.State.STARTING);
        worker.execute(life.guard(() -> {
            try {
                ram = hv.mapGuestRam(pvm);
                ram.prefault(); // the first, full copy must not pay a page fault per page in the pause
                shadow = ShadowMemory.like(ram);
                scanner = new DirtyPageScanner(runtime.parallel());
                hv.prepareCheckpoint(pvm, QMP);
            } catch (RuntimeException e) {
                log.atError().addKeyValue("pair", pair).addKeyValue("domain", pvm.name()).addKeyValue("reason", e.getMessage())
                        .log("cannot start checkpointing");
                post(() -> coordinator.start(now()));
                return;
            }
            life.tryTransition(LifeCycle.State.RUNNING);
            precopy(1, firstSeq, now(), 0);
        }));
        ticker = coordinatorLane.every(50_000_000L, 50_000_000L, life.guard(() -> coordinator.doWork(now())));
    }

    public void trigger(Trigger t, String why) {
        post(() -> coordinator.onTrigger(t, why, now()));
    }

    /** An acknowledgement from the secondary. */
    public void onAck(dev.colo.checkpoint.link.proto.CheckpointAck ack) {
        long t = now();
        secondaryReusesSvm = ack.getStatus() == Status.OK && ack.getSvmReusable();
        if (ack.getStatus() == Status.OK) {
            disks.acknowledged(ack.getCheckpointSeq());
            if (ack.getLoadedInPlace()) {
                loadedInPlace.add(ack.getCheckpointSeq());
            }
            post(() -> coordinator.onAck(ack.getCheckpointSeq(), ack.getSvmReadyNs(), t));
        } else {
            post(() -> coordinator.onStepFailed(ack.getCheckpointSeq(), Step.ACK, "secondary: " + ack.getStatus() + " " + ack.getDetail(), t));
        }
    }

    /** The link to the secondary went down: whatever is in flight cannot complete. */
    public void onLinkDown(String why) {
        secondaryReusesSvm = false;
        post(() -> coordinator.onStepFailed(coordinator.attemptSeq(), Step.SHIP, "link down: " + why, now()));
    }

    /** The coordinator's state and last committed checkpoint, read on its lane. */
    public record Progress(CheckpointCoordinator.State state, long committedSeq, long attemptSeq) {}

    public Progress progress() {
        try {
            return coordinatorLane.call(() -> new Progress(coordinator.state(), coordinator.committedSeq(), coordinator.attemptSeq()));
        } catch (Exception e) {
            throw new IllegalStateException("checkpoint coordinator did not answer: " + e.getMessage(), e);
        }
    }

    /** The first checkpoint of this engine's pairing: acknowledgements of lower numbers belong to an earlier one. */
    public long firstSeq() {
        return firstSeq;
    }

    public long committedSeq() {
        return progress().committedSeq();
    }

    private void post(Runnable r) {
        coordinatorLane.execute(life.guard(r));
    }

    private interface Work {
        void run() throws Exception;
    }

    /** Runs blocking work on the worker; a failure becomes the step's failure event. */
    private void work(long seq, Step step, Work w) {
        worker.execute(life.guard(() -> {
            try {
                w.run();
            } catch (Exception e) {
                String why = e.getMessage() == null ? e.toString() : e.getMessage();
                post(() -> coordinator.onStepFailed(seq, step, why, now()));
            }
        }));
    }

    // --- CheckpointActions (called on the coordinator lane) ---

    @Override
    public void pause(long seq) {
        work(seq, Step.PAUSE, () -> {
            if (ram == null) {
                throw new IllegalStateException("the PVM's RAM is not mapped (see the earlier error)");
            }
            listener.onPausing(seq);
            disks.pausing(seq);
            hv.pause(pvm, QMP);
            long t = now();
            post(() -> coordinator.onPaused(seq, t));
        });
    }

    @Override
    public void snapshot(long seq) {
        listener.onSnapshot(seq);
    }

    @Override
    public void capture(long seq, boolean full) {
        work(seq, Step.CAPTURE, () -> {
            // QMP stop drained the PVM's I/O: every write its guest saw complete is in the disks'
            // relays now, and nothing the guest writes after the resume belongs to this checkpoint.
            disks.cut(seq);
            // Both need only a paused PVM: save device state while the pages are scanned.
            long t0 = now();
            long[] saveDone = new long[1];
            DeviceStateForm form = !full && secondaryReusesSvm ? DeviceStateForm.DEVICES_ONLY : DeviceStateForm.MIGRATION_STREAM;
            java.util.concurrent.Future<byte[]> save = runtime.parallel().submit(() -> {
                byte[] b = (form == DeviceStateForm.DEVICES_ONLY ? hv.saveDevices(pvm, QMP) : hv.saveDeviceState(pvm, QMP)).bytes();
                saveDone[0] = now();
                return b;
            });
            long[] pages;
            if (full) {
                shadow.copyAll(ram);
                pages = LongStream.range(0, ram.pageCount()).toArray();
            } else {
                pages = scanner.scanAndUpdate(ram, shadow);
            }
            long tScan = now();
            byte[] device;
            try {
                device = save.get(QMP.toMillis(), java.util.concurrent.TimeUnit.MILLISECONDS);
            } catch (java.util.concurrent.ExecutionException ex) {
                throw ex.getCause() instanceof Exception c ? c : ex;
            }
            capturedPages = pages;
            capturedDevice = device;
            capturedFull = full;
            capturedForm = form;
            long t = now();
            log.atDebug().addKeyValue("pair", pair).addKeyValue("ckpt", seq).addKeyValue("pages", pages.length)
                    .addKeyValue("scan_ms", String.format("%.1f", (tScan - t0) / 1e6))
                    .addKeyValue("save_ms", String.format("%.1f", (saveDone[0] - t0) / 1e6)).addKeyValue("device_state", form)
                    .addKeyValue("capture_ms", String.format("%.1f", (t - t0) / 1e6)).log("checkpoint captured");
            post(() -> coordinator.onCaptured(seq, pages.length, (long) pages.length * GuestRam.PAGE_SIZE, 0, device.length, t));
        });
    }

    @Override
    public void resume(long seq) {
        work(seq, Step.RESUME, () -> {
            long t0 = now();
            hv.resume(pvm, QMP);
            long t = now();
            log.atDebug().addKeyValue("pair", pair).addKeyValue("ckpt", seq).addKeyValue("cont_ms", String.format("%.1f", (t - t0) / 1e6))
                    .log("PVM resumed");
            post(() -> coordinator.onResumed(seq, t));
        });
    }

    @Override
    public void ship(long seq) {
        shippingSeq = seq;
        work(seq, Step.SHIP, () -> {
            PageBatches.Encoded enc = PageBatches.encode(seq, capturedPages, shadow, codec, 256);
            List<DiskWrites> diskBatches = disks.batches(seq);
            List<Envelope> messages = new ArrayList<>(enc.batches().size() + diskBatches.size() + 3);
            messages.add(envelope(Envelope.newBuilder().setCheckpointBegin(CheckpointBegin.newBuilder().setCheckpointSeq(seq)
                    .setFull(capturedFull).setGuestRamBytes(ram.size()).setPageSize(GuestRam.PAGE_SIZE).setBatches(enc.batches().size())
                    .setDiskBatches(diskBatches.size()).putAllDiskCopyBatches(disks.copyBatches(seq))
                    .setPrecopyBatches(seq == firstSeq && !capturedFull ? precopyBatches : 0))));
            for (PageBatch b : enc.batches()) {
                messages.add(envelope(Envelope.newBuilder().setPages(b)));
            }
            long diskWire = 0;
            for (DiskWrites d : diskBatches) {
                messages.add(envelope(Envelope.newBuilder().setDiskWrites(d)));
                diskWire += d.getData().size();
            }
            CRC32C crc = new CRC32C();
            crc.update(capturedDevice);
            // A migration stream is ~600 KB, mostly ROM and BIOS images: it compresses well.
            byte[] packedDevice = codec.compress(capturedDevice, capturedDevice.length);
            messages.add(envelope(Envelope.newBuilder().setDeviceState(DeviceState.newBuilder().setCheckpointSeq(seq)
                    .setState(ByteString.copyFrom(packedDevice)).setCrc32C((int) crc.getValue()).setCodec(codec.wireName())
                    .setRawLength(capturedDevice.length).setForm(capturedForm))));
            messages.add(envelope(Envelope.newBuilder().setCheckpointCommit(CheckpointCommit.newBuilder().setCheckpointSeq(seq)
                    .setBatches(enc.batches().size()).setDirtyPages(capturedPages.length))));
            long wire = enc.wireBytes() + packedDevice.length + diskWire;
            sendAll(seq, messages.iterator(), wire);
        });
    }

    /**
     * Sends with backpressure: while the link is above its high-water mark the rest waits on the
     * worker lane (never a blocked thread), bounded by the ship step's timeout.
     */
    private void sendAll(long seq, Iterator<Envelope> rest, long wire) {
        send(rest, () -> shippingSeq == seq, () -> {
            long t = now();
            post(() -> coordinator.onShipped(seq, wire, t));
        });
    }

    /** Sends {@code rest} with backpressure, then runs {@code done}; gives up quietly once {@code still} says no. Worker lane. */
    private void send(Iterator<Envelope> rest, java.util.function.BooleanSupplier still, Runnable done) {
        while (rest.hasNext()) {
            if (!link.writable()) {
                worker.schedule(SEND_RETRY_NS, life.guard(() -> {
                    if (still.getAsBoolean()) {
                        send(rest, still, done);
                    }
                }));
                return;
            }
            link.send(rest.next());
        }
        done.run();
    }

    /**
     * Pairing without a long pause: before the first checkpoint, guest RAM goes to the secondary
     * while the PVM runs, in rounds: all of it, then what changed meanwhile, until little changes
     * (or {@link #PRECOPY_ROUNDS} rounds). Each round's pages pass through the shadow, so the first
     * checkpoint's pause only finds and ships what changed since the last round. Worker lane.
     */
    private void precopy(int round, long firstSeq, long t0, long sentPages) {
        long[] pages;
        if (round == 1) {
            shadow.copyAll(ram); // the PVM writes on meanwhile: the next rounds and the checkpoint catch that
            pages = LongStream.range(0, ram.pageCount()).toArray();
        } else {
            pages = scanner.scanAndUpdate(ram, shadow);
        }
        boolean last = round >= PRECOPY_ROUNDS || (round > 1 && pages.length <= Math.max(256, ram.pageCount() / 200));
        long total = sentPages + pages.length;
        Runnable next = () -> {
            if (!last) {
                precopy(round + 1, firstSeq, t0, total);
                return;
            }
            log.atInfo().addKeyValue("pair", pair).addKeyValue("domain", pvm.name()).addKeyValue("rounds", round).addKeyValue("pages", total)
                    .addKeyValue("last_round_pages", pages.length).addKeyValue("precopy_ms", String.format("%.1f", (now() - t0) / 1e6))
                    .log("guest RAM copied to the secondary while the PVM ran; the first checkpoint ships only what changed since");
            post(() -> coordinator.start(now(), true));
        };
        if (pages.length == 0) {
            next.run();
            return;
        }
        PageBatches.Encoded enc = PageBatches.encode(firstSeq, pages, shadow, codec, 256);
        precopyBatches += enc.batches().size();
        Iterator<Envelope> batches = enc.batches().stream().map(b -> envelope(Envelope.newBuilder().setPrecopy(b))).iterator();
        send(batches, life::accepting, next);
    }


    private Envelope envelope(Envelope.Builder b) {
        return b.setProtocolVersion(LinkProtocol.VERSION).setPair(pair).setTerm(term.getAsLong()).setRole(Role.PRIMARY).build();
    }

    @Override
    public void release(long seq) {
        listener.onRelease(seq);
        worker.execute(life.guard(() -> {
            try {
                hv.prepareCheckpoint(pvm, QMP);
            } catch (RuntimeException e) {
                log.atWarn().addKeyValue("pair", pair).addKeyValue("domain", pvm.name()).addKeyValue("reason", e.getMessage())
                        .log("cannot prepare the next checkpoint ahead of time; it will prepare inline");
            }
        }));
    }

    @Override
    public void abandon(long seq, String reason) {
        shippingSeq = -1;
        secondaryReusesSvm = false;
        listener.onAbandon(seq, reason);
        link.send(envelope(Envelope.newBuilder().setCheckpointAbort(CheckpointAbort.newBuilder().setCheckpointSeq(seq).setReason(reason))));
    }

    @Override
    public void handOver(long seq) {
        listener.onHandOver(seq);
    }

    @Override
    public void record(CheckpointRecord r) {
        log.atInfo().addKeyValue("pair", pair).addKeyValue("domain", pvm.name()).addKeyValue("ckpt", r.seq())
                .addKeyValue("trigger", r.trigger().name().toLowerCase()).addKeyValue("reason", r.reason()).addKeyValue("full", r.full())
                .addKeyValue("outcome", r.outcome()).addKeyValue("paused_ms", String.format("%.1f", r.pausedNs() / 1e6))
                .addKeyValue("dirty_pages", r.dirtyPages()).addKeyValue("raw_bytes", r.rawBytes()).addKeyValue("wire_bytes", r.wireBytes())
                .addKeyValue("device_state_bytes", r.deviceStateBytes()).addKeyValue("svm_in_place", loadedInPlace.remove(r.seq()))
                .addKeyValue("svm_ready_ms", String.format("%.1f", r.svmReadyNs() / 1e6))
                .addKeyValue("total_ms", String.format("%.1f", r.totalNs() / 1e6))
                .log(r.committed() ? "checkpoint committed" : "checkpoint aborted");
        listener.onRecord(r);
    }

    /**
     * Stops checkpointing. A step in flight finishes its blocking call, but nothing it reports is
     * acted on any more; the RAM mapping is released on the worker, after whatever runs there now.
     */
    @Override
    public void close() {
        life.closeOnce(() -> {
            ticker.cancel();
            worker.execute(() -> {
                if (ram != null) {
                    ram.close();
                    ram = null;
                }
            });
        });
    }

    public boolean closed() {
        return life.closed();
    }
}
