package dev.colo.checkpoint.engine;

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
import dev.colo.checkpoint.link.proto.Envelope;
import dev.colo.checkpoint.link.proto.PageBatch;
import dev.colo.checkpoint.link.proto.Role;
import dev.colo.checkpoint.link.proto.Status;
import dev.colo.checkpoint.ship.Codec;
import dev.colo.checkpoint.ship.PageBatches;
import dev.colo.hypervisor.DomainRef;
import dev.colo.hypervisor.GuestRam;
import dev.colo.hypervisor.Hypervisor;
import java.time.Duration;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import java.util.stream.LongStream;
import java.util.zip.CRC32C;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The primary half of the engine: runs the coordinator on its own thread and carries out its
 * actions. Hypervisor calls and page work run on one worker thread; their outcomes go back to the
 * coordinator as events. The shadow holds guest RAM as of the last checkpoint; pages are shipped
 * from it after the PVM resumed, so the pause covers only the scan and the device-state save.
 */
public final class PrimaryCheckpointEngine implements CheckpointActions, AutoCloseable {
    private static final Logger log = LoggerFactory.getLogger(PrimaryCheckpointEngine.class);
    private static final Duration QMP = Duration.ofSeconds(5);

    /** What the engine tells the daemon (the proxy's path, metrics). Called on the coordinator thread. */
    public interface Listener {
        /**
         * Checkpoint {@code epoch} is about to pause the PVM; called on the engine's worker and
         * the pause waits for it (the proxy starts feeding the next SVM before the pause).
         */
        default void onPausing(long epoch) {
        }

        /** Client input from now on belongs to {@code epoch}'s SVM. */
        default void onSnapshot(long epoch) {
        }

        /** PVM output held up to {@code epoch} may leave. */
        default void onRelease(long epoch) {
        }

        /** {@code epoch} was given up; input goes back to the running SVM. */
        default void onAbandon(long epoch, String reason) {
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
    private final ScheduledExecutorService coordinatorThread;
    private final ExecutorService worker;
    private final ExecutorService scanPool;
    private final ExecutorService savePool;
    private final CheckpointCoordinator coordinator;
    private final CoordinatorConfig config;
    private GuestRam ram;
    private ShadowMemory shadow;
    private DirtyPageScanner scanner;
    private long[] capturedPages = new long[0];
    private byte[] capturedDevice = new byte[0];
    private boolean capturedFull;
    private volatile boolean closed;

    public PrimaryCheckpointEngine(String pair, Hypervisor hv, DomainRef pvm, LinkPort link, Codec codec, CoordinatorConfig config,
            Listener listener) {
        this(pair, hv, pvm, link, codec, config, listener, 0);
    }

    /** @param fromEpoch the pair's epoch so far; this engine's first (full) checkpoint is {@code fromEpoch + 1} */
    public PrimaryCheckpointEngine(String pair, Hypervisor hv, DomainRef pvm, LinkPort link, Codec codec, CoordinatorConfig config,
            Listener listener, long fromEpoch) {
        this.pair = pair;
        this.hv = hv;
        this.pvm = pvm;
        this.link = link;
        this.codec = codec;
        this.config = config;
        this.listener = listener;
        this.coordinatorThread = Executors.newSingleThreadScheduledExecutor(r -> daemon(r, "colo-ckpt-coordinator"));
        this.worker = Executors.newSingleThreadExecutor(r -> daemon(r, "colo-ckpt-worker"));
        // The scan uses every core; the device-state save waits on QEMU on its own thread. (Leaving a
        // core to QEMU's migration thread was measured too: on a saturated 2-core lab the pause got
        // longer, 48-55 ms median against 40-41 ms.)
        this.scanPool = Executors.newFixedThreadPool(Runtime.getRuntime().availableProcessors(), r -> daemon(r, "colo-ckpt-scan"));
        this.savePool = Executors.newSingleThreadExecutor(r -> daemon(r, "colo-ckpt-save"));
        this.coordinator = new CheckpointCoordinator(config, this, t -> log.atInfo().addKeyValue("pair", pair)
                .addKeyValue("epoch", t.epoch()).addKeyValue("from", t.from()).addKeyValue("to", t.to()).addKeyValue("reason", t.reason())
                .log("checkpoint state changed"), fromEpoch);
    }

    private static Thread daemon(Runnable r, String name) {
        Thread t = new Thread(r, name);
        t.setDaemon(true);
        return t;
    }

    /** Maps the PVM's RAM and starts protection with a full first checkpoint. */
    public void start() {
        worker.execute(() -> {
            try {
                ram = hv.mapGuestRam(pvm);
                ram.prefault(); // the first, full copy must not pay a page fault per page in the pause
                shadow = ShadowMemory.like(ram);
                scanner = new DirtyPageScanner(scanPool);
                hv.prepareCheckpoint(pvm, QMP);
            } catch (RuntimeException e) {
                log.atError().addKeyValue("pair", pair).addKeyValue("vm", pvm.name()).addKeyValue("reason", e.getMessage())
                        .log("cannot start checkpointing");
                throw e;
            }
            post(() -> coordinator.start(System.nanoTime()));
        });
        coordinatorThread.scheduleAtFixedRate(() -> coordinator.doWork(System.nanoTime()), 50, 50, TimeUnit.MILLISECONDS);
    }

    public void trigger(Trigger t, String why) {
        post(() -> coordinator.onTrigger(t, why, System.nanoTime()));
    }

    /** Messages from the secondary. */
    public void onLinkMessage(Envelope e) {
        if (e.getBodyCase() == Envelope.BodyCase.CHECKPOINT_ACK) {
            var ack = e.getCheckpointAck();
            long now = System.nanoTime();
            if (ack.getStatus() == Status.OK) {
                post(() -> coordinator.onAck(ack.getCheckpointEpoch(), ack.getSvmReadyNs(), now));
            } else {
                post(() -> coordinator.onStepFailed(ack.getCheckpointEpoch(), Step.ACK, "secondary: " + ack.getStatus() + " " + ack.getDetail(), now));
            }
        }
    }

    /** The link to the secondary went down: whatever is in flight cannot complete. */
    public void onLinkDown(String why) {
        post(() -> coordinator.onStepFailed(coordinator.inFlightEpoch(), Step.SHIP, "link down: " + why, System.nanoTime()));
    }

    public long committedEpoch() {
        return callOnCoordinator(coordinator::committedEpoch);
    }

    public CheckpointCoordinator.State state() {
        return callOnCoordinator(coordinator::state);
    }

    private <T> T callOnCoordinator(java.util.concurrent.Callable<T> c) {
        try {
            return coordinatorThread.submit(c).get(5, TimeUnit.SECONDS);
        } catch (Exception e) {
            throw new IllegalStateException("coordinator did not answer", e);
        }
    }

    private void post(Runnable r) {
        try {
            coordinatorThread.execute(r);
        } catch (java.util.concurrent.RejectedExecutionException e) {
            if (!closed) {
                throw e;
            }
            // closed with a step in flight (fencing, unpairing): its outcome no longer matters
        }
    }

    private interface Work {
        void run() throws Exception;
    }

    /** Runs blocking work on the worker; a failure becomes the step's failure event. */
    private void work(long epoch, Step step, Work w) {
        worker.execute(() -> {
            try {
                w.run();
            } catch (Exception e) {
                String why = e.getMessage() == null ? e.toString() : e.getMessage();
                post(() -> coordinator.onStepFailed(epoch, step, why, System.nanoTime()));
            }
        });
    }

    // --- CheckpointActions (called on the coordinator thread) ---

    @Override
    public void pause(long epoch) {
        work(epoch, Step.PAUSE, () -> {
            listener.onPausing(epoch);
            hv.pause(pvm, QMP);
            long now = System.nanoTime();
            post(() -> coordinator.onPaused(epoch, now));
        });
    }

    @Override
    public void snapshot(long epoch) {
        listener.onSnapshot(epoch);
    }

    @Override
    public void capture(long epoch, boolean full) {
        work(epoch, Step.CAPTURE, () -> {
            // Both need only a paused PVM: save device state while the pages are scanned.
            long t0 = System.nanoTime();
            long[] saveDone = new long[1];
            java.util.concurrent.Future<byte[]> save = savePool.submit(() -> {
                byte[] b = hv.saveDeviceState(pvm, QMP).bytes();
                saveDone[0] = System.nanoTime();
                return b;
            });
            long[] pages;
            if (full) {
                shadow.copyAll(ram);
                pages = LongStream.range(0, ram.pageCount()).toArray();
            } else {
                pages = scanner.scanAndUpdate(ram, shadow);
            }
            long tScan = System.nanoTime();
            byte[] device;
            try {
                device = save.get(QMP.toMillis(), TimeUnit.MILLISECONDS);
            } catch (java.util.concurrent.ExecutionException ex) {
                throw ex.getCause() instanceof Exception c ? c : ex;
            }
            capturedPages = pages;
            capturedDevice = device;
            capturedFull = full;
            long now = System.nanoTime();
            log.atDebug().addKeyValue("pair", pair).addKeyValue("epoch", epoch).addKeyValue("pages", pages.length)
                    .addKeyValue("scan_ms", String.format("%.1f", (tScan - t0) / 1e6))
                    .addKeyValue("save_ms", String.format("%.1f", (saveDone[0] - t0) / 1e6))
                    .addKeyValue("capture_ms", String.format("%.1f", (now - t0) / 1e6)).log("checkpoint captured");
            post(() -> coordinator.onCaptured(epoch, pages.length, (long) pages.length * GuestRam.PAGE_SIZE, 0, device.length, now));
        });
    }

    @Override
    public void resume(long epoch) {
        work(epoch, Step.RESUME, () -> {
            long t0 = System.nanoTime();
            hv.resume(pvm, QMP);
            long now = System.nanoTime();
            log.atDebug().addKeyValue("pair", pair).addKeyValue("epoch", epoch)
                    .addKeyValue("cont_ms", String.format("%.1f", (now - t0) / 1e6)).log("PVM resumed");
            post(() -> coordinator.onResumed(epoch, now));
        });
    }

    @Override
    public void ship(long epoch) {
        work(epoch, Step.SHIP, () -> {
            PageBatches.Encoded enc = PageBatches.encode(epoch, capturedPages, shadow, codec, 256);
            send(Envelope.newBuilder().setCheckpointBegin(CheckpointBegin.newBuilder().setCheckpointEpoch(epoch).setFull(capturedFull)
                    .setGuestRamBytes(ram.size()).setPageSize(GuestRam.PAGE_SIZE).setBatches(enc.batches().size())), epoch);
            for (PageBatch b : enc.batches()) {
                send(Envelope.newBuilder().setPages(b), epoch);
            }
            CRC32C crc = new CRC32C();
            crc.update(capturedDevice);
            // Device state is ~600 KB, mostly ROM and BIOS images: it compresses well.
            byte[] packedDevice = codec.compress(capturedDevice, capturedDevice.length);
            send(Envelope.newBuilder().setDeviceState(DeviceState.newBuilder().setCheckpointEpoch(epoch)
                    .setState(com.google.protobuf.ByteString.copyFrom(packedDevice)).setCrc32C((int) crc.getValue())
                    .setCodec(codec.wireName()).setRawLength(capturedDevice.length)), epoch);
            send(Envelope.newBuilder().setCheckpointCommit(CheckpointCommit.newBuilder().setCheckpointEpoch(epoch)
                    .setBatches(enc.batches().size()).setDirtyPages(capturedPages.length)), epoch);
            long wire = enc.wireBytes() + packedDevice.length;
            long now = System.nanoTime();
            post(() -> coordinator.onShipped(epoch, wire, now));
        });
    }

    /** Sends with backpressure: waits while the link cannot take more (the ship step has a timeout). */
    private void send(Envelope.Builder b, long epoch) throws InterruptedException {
        Envelope e = b.setProtocolVersion(LinkProtocol.VERSION).setPair(pair).setEpoch(epoch).setRole(Role.PRIMARY).build();
        while (!link.writable()) {
            Thread.sleep(1);
        }
        link.send(e);
    }

    @Override
    public void release(long epoch) {
        listener.onRelease(epoch);
        worker.execute(() -> {
            try {
                hv.prepareCheckpoint(pvm, QMP);
            } catch (RuntimeException e) {
                log.atWarn().addKeyValue("pair", pair).addKeyValue("vm", pvm.name()).addKeyValue("reason", e.getMessage())
                        .log("cannot prepare the next checkpoint ahead of time; it will prepare inline");
            }
        });
    }

    @Override
    public void abandon(long epoch, String reason) {
        listener.onAbandon(epoch, reason);
        link.send(Envelope.newBuilder().setProtocolVersion(LinkProtocol.VERSION).setPair(pair).setEpoch(epoch).setRole(Role.PRIMARY)
                .setCheckpointAbort(CheckpointAbort.newBuilder().setCheckpointEpoch(epoch).setReason(reason)).build());
    }

    @Override
    public void record(CheckpointRecord r) {
        log.atInfo().addKeyValue("pair", pair).addKeyValue("vm", pvm.name()).addKeyValue("epoch", r.epoch())
                .addKeyValue("trigger", r.trigger().name().toLowerCase()).addKeyValue("reason", r.reason()).addKeyValue("full", r.full())
                .addKeyValue("outcome", r.outcome()).addKeyValue("paused_ms", String.format("%.1f", r.pausedNs() / 1e6))
                .addKeyValue("dirty_pages", r.dirtyPages()).addKeyValue("raw_bytes", r.rawBytes()).addKeyValue("wire_bytes", r.wireBytes())
                .addKeyValue("device_state_bytes", r.deviceStateBytes()).addKeyValue("svm_ready_ms", String.format("%.1f", r.svmReadyNs() / 1e6))
                .log(r.committed() ? "checkpoint committed" : "checkpoint aborted");
        listener.onRecord(r);
    }

    @Override
    public void close() {
        closed = true;
        coordinatorThread.shutdownNow();
        worker.shutdownNow();
        scanPool.shutdownNow();
        savePool.shutdownNow();
        if (ram != null) {
            ram.close();
        }
    }
}
