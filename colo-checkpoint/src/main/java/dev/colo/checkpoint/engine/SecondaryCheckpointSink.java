package dev.colo.checkpoint.engine;

import dev.colo.checkpoint.dirty.ShadowMemory;
import dev.colo.checkpoint.link.LinkProtocol;
import dev.colo.checkpoint.link.proto.CheckpointAck;
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
import java.time.Duration;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.TimeUnit;
import java.util.function.LongFunction;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The secondary half of the engine. It keeps a hot standby started with {@code -incoming defer} and
 * its RAM already filled from the secondary's shadow (guest RAM as of the last checkpoint), so a
 * checkpoint only writes the dirty pages, loads device state and runs it. The new SVM then replaces
 * the old one, which is retired. Anything wrong keeps the old SVM and tells the primary why.
 */
public final class SecondaryCheckpointSink implements AutoCloseable {
    private static final Logger log = LoggerFactory.getLogger(SecondaryCheckpointSink.class);
    private static final Duration QMP = Duration.ofSeconds(10);

    /** What the sink tells the daemon. Called on the sink's worker thread. */
    public interface Listener {
        /** A standby is being defined and started (e.g. to plug its network in). */
        default void onStandbyStarted(long forEpoch, DomainRef standby) {
        }

        /**
         * {@code standby} holds checkpoint {@code epoch} and is about to run: route its traffic now,
         * so that nothing it sends in its first moments is lost. Called before {@code cont}.
         */
        default void onSvmStarting(long epoch, DomainRef standby) {
        }

        /** {@code svm} runs as the SVM of {@code epoch}; swap traffic to it. */
        void onSvmReplaced(long epoch, DomainRef svm, DomainRef retired);
    }

    private final String pair;
    private final Hypervisor hv;
    private final LongFunction<String> standbyXml;
    private final long guestRamBytes;
    private final LinkPort link;
    private final Listener listener;
    private final ExecutorService worker = Executors.newSingleThreadExecutor(r -> {
        Thread t = new Thread(r, "colo-ckpt-sink");
        t.setDaemon(true);
        return t;
    });
    // Starting a QEMU takes far longer than a checkpoint: the next standby starts here, in the
    // background, while the current one waits filled for the next commit.
    private final ExecutorService starter = Executors.newSingleThreadExecutor(r -> {
        Thread t = new Thread(r, "colo-ckpt-standby-start");
        t.setDaemon(true);
        return t;
    });
    private java.util.concurrent.Future<Started> starting;
    private ShadowMemory shadow;
    private DomainRef svm;
    private DomainRef standby;
    private GuestRam standbyRam;
    private CheckpointAssembler assembling;
    private String assemblyFailure;
    private long standbySeq;
    private volatile boolean tookOver;

    /** A standby that runs (paused, waiting for device state) with its RAM mapped, not yet filled. */
    private record Started(DomainRef domain, GuestRam ram) {}

    /**
     * @param standbyXml the libvirt XML of the standby to start for a given sequence number (a
     *     fresh name and UUID each time, {@code -incoming defer}, shared file-backed RAM)
     */
    public SecondaryCheckpointSink(String pair, Hypervisor hv, LongFunction<String> standbyXml, long guestRamBytes, LinkPort link,
            Listener listener) {
        this.pair = pair;
        this.hv = hv;
        this.standbyXml = standbyXml;
        this.guestRamBytes = guestRamBytes;
        this.link = link;
        this.listener = listener;
    }

    public void start() {
        worker.execute(() -> {
            shadow = new ShadowMemory(guestRamBytes, 1 << 30 < guestRamBytes ? 1 << 30 : (int) guestRamBytes);
            prepareStandby();
        });
    }

    /** Messages from the primary, in order. */
    public void onLinkMessage(Envelope e) {
        worker.execute(() -> handle(e));
    }

    public DomainRef currentSvm() {
        try {
            return worker.submit(() -> svm).get(10, TimeUnit.SECONDS);
        } catch (Exception ex) {
            throw new IllegalStateException(ex);
        }
    }

    /**
     * Promotion: the running SVM is the VM from now on and stays; the standby is retired and later
     * checkpoint messages are ignored. Returns the SVM (null if none ran yet).
     */
    public DomainRef takeOver() {
        try {
            return worker.submit(() -> {
                tookOver = true;
                assembling = null;
                if (standbyRam != null) {
                    standbyRam.close();
                    standbyRam = null;
                }
                if (standby != null) {
                    retire(standby);
                    standby = null;
                }
                retireStarting();
                return svm;
            }).get(30, TimeUnit.SECONDS);
        } catch (Exception ex) {
            throw new IllegalStateException("sink did not hand over its SVM: " + ex, ex);
        }
    }

    private void handle(Envelope e) {
        if (tookOver) {
            return;
        }
        try {
            switch (e.getBodyCase()) {
                case CHECKPOINT_BEGIN -> {
                    assembling = new CheckpointAssembler(e.getCheckpointBegin(), guestRamBytes);
                    assemblyFailure = null;
                }
                case PAGES -> {
                    if (assembling != null && assemblyFailure == null) {
                        assembling.onBatch(e.getPages());
                    }
                }
                case DEVICE_STATE -> {
                    if (assembling != null && assemblyFailure == null) {
                        assembling.onDeviceState(e.getDeviceState());
                    }
                }
                case CHECKPOINT_COMMIT -> commit(e);
                case CHECKPOINT_ABORT -> {
                    log.atInfo().addKeyValue("pair", pair).addKeyValue("epoch", e.getCheckpointAbort().getCheckpointEpoch())
                            .addKeyValue("reason", e.getCheckpointAbort().getReason()).log("primary abandoned the checkpoint, current SVM stays");
                    assembling = null;
                }
                default -> {
                    // Other messages belong to the daemon (heartbeats, frames).
                }
            }
        } catch (CorruptBatchException ex) {
            assemblyFailure = ex.getMessage();
        }
    }

    private void commit(Envelope e) {
        long epoch = e.getCheckpointCommit().getCheckpointEpoch();
        long t0 = System.nanoTime();
        if (assembling == null || assembling.epoch() != epoch || assemblyFailure != null) {
            nack(epoch, Status.CORRUPT, assemblyFailure != null ? assemblyFailure : "commit for a checkpoint we never began");
            assembling = null;
            return;
        }
        ensureStandby();
        if (standby == null) {
            nack(epoch, Status.UNAVAILABLE, "no standby could be started; see the secondary's log");
            assembling = null;
            prepareStandby();
            return;
        }
        byte[] device;
        try {
            device = assembling.commit(e.getCheckpointCommit(), standbyRam);
        } catch (CorruptBatchException ex) {
            nack(epoch, Status.CORRUPT, ex.getMessage());
            assembling = null;
            return;
        }
        CheckpointAssembler done = assembling;
        assembling = null;
        try {
            standbyRam.close();
            standbyRam = null;
            hv.loadDeviceState(standby, new DeviceState(device), QMP);
            listener.onSvmStarting(epoch, standby);
            hv.resume(standby, QMP);
        } catch (HypervisorException ex) {
            log.atError().addKeyValue("pair", pair).addKeyValue("epoch", epoch).addKeyValue("standby", standby.name())
                    .addKeyValue("reason", ex.getMessage()).log("standby failed to load the checkpoint; the current SVM keeps running");
            retire(standby);
            standby = null;
            nack(epoch, Status.UNAVAILABLE, "standby failed to load: " + ex.getMessage());
            prepareStandby();
            return;
        }
        long readyNs = System.nanoTime() - t0;
        // The shadow follows: the next standby is filled from it.
        reapply(done);
        DomainRef retired = svm;
        svm = standby;
        standby = null;
        try {
            listener.onSvmReplaced(epoch, svm, retired);
        } catch (RuntimeException ex) {
            log.atWarn().addKeyValue("pair", pair).addKeyValue("svm", svm.name()).addKeyValue("reason", ex.getMessage())
                    .log("SVM replaced but the daemon could not swap its traffic");
        }
        if (retired != null) {
            retire(retired);
        }
        link.send(envelope(epoch).setCheckpointAck(CheckpointAck.newBuilder().setCheckpointEpoch(epoch).setStatus(Status.OK)
                .setSvmReadyNs(readyNs)).build());
        log.atInfo().addKeyValue("pair", pair).addKeyValue("epoch", epoch).addKeyValue("svm", svm.name())
                .addKeyValue("svm_ready_ms", String.format("%.1f", readyNs / 1e6)).log("SVM replaced by the checkpoint's standby");
        prepareStandby();
    }

    /** The assembler wrote the pages into the standby; write the same into the shadow. */
    private void reapply(CheckpointAssembler done) {
        done.applyAgain(new ShadowRam(shadow));
    }

    private void nack(long epoch, Status status, String why) {
        log.atWarn().addKeyValue("pair", pair).addKeyValue("epoch", epoch).addKeyValue("status", status).addKeyValue("reason", why)
                .log("checkpoint refused, current SVM keeps running");
        link.send(envelope(epoch).setCheckpointAck(CheckpointAck.newBuilder().setCheckpointEpoch(epoch).setStatus(status).setDetail(why)).build());
    }

    private Envelope.Builder envelope(long epoch) {
        return Envelope.newBuilder().setProtocolVersion(LinkProtocol.VERSION).setPair(pair).setEpoch(epoch).setRole(Role.SECONDARY);
    }

    /**
     * Gets the next standby going without waiting for it: one QEMU starts in the background; when
     * it is already up, it is filled from the shadow now, outside any checkpoint.
     */
    private void prepareStandby() {
        readyStandby(false);
    }

    /** At a commit: waits for a started standby if none is filled yet. */
    private void ensureStandby() {
        readyStandby(true);
    }

    private void readyStandby(boolean wait) {
        if (tookOver || standby != null) {
            return;
        }
        if (starting == null) {
            starting = starter.submit(this::startOne);
        }
        if (wait || starting.isDone()) {
            fillStarted();
        }
    }

    private void fillStarted() {
        Started s;
        try {
            s = starting.get(120, TimeUnit.SECONDS);
        } catch (Exception ex) {
            Throwable cause = ex instanceof java.util.concurrent.ExecutionException && ex.getCause() != null ? ex.getCause() : ex;
            log.atError().addKeyValue("pair", pair).addKeyValue("reason", String.valueOf(cause.getMessage()))
                    .log("cannot prepare a standby; the next checkpoint will be refused until one starts");
            starting = null;
            return;
        }
        starting = null;
        for (long off = 0; off < guestRamBytes; off += shadow.chunkSize()) {
            int len = (int) Math.min(shadow.chunkSize(), guestRamBytes - off);
            s.ram().write(off, shadow.view(off, len));
        }
        standby = s.domain();
        standbyRam = s.ram();
        starting = starter.submit(this::startOne); // the one after next, in the background
    }

    /** Defines and starts one standby (paused, {@code -incoming defer}) and maps its RAM. Starter thread. */
    private Started startOne() {
        long seq = ++standbySeq;
        DomainRef d = null;
        try {
            d = hv.define(standbyXml.apply(seq));
            hv.start(d, true);
            try {
                listener.onStandbyStarted(seq, d);
            } catch (RuntimeException ex) {
                log.atWarn().addKeyValue("pair", pair).addKeyValue("standby", d.name()).addKeyValue("reason", ex.getMessage())
                        .log("standby started but the daemon could not wire it up");
            }
            GuestRam ram = hv.mapGuestRam(d);
            ram.prefault();
            return new Started(d, ram);
        } catch (RuntimeException ex) {
            if (d != null) {
                retire(d);
            }
            throw ex;
        }
    }

    /** Retires a standby still starting (close, takeover). Worker thread. */
    private void retireStarting() {
        if (starting == null) {
            return;
        }
        try {
            Started s = starting.get(60, TimeUnit.SECONDS);
            s.ram().close();
            retire(s.domain());
        } catch (Exception ex) {
            // it failed to start: nothing to retire
        }
        starting = null;
    }

    private void retire(DomainRef d) {
        try {
            hv.destroy(d);
            hv.undefine(d);
        } catch (HypervisorException ex) {
            log.atWarn().addKeyValue("pair", pair).addKeyValue("vm", d.name()).addKeyValue("reason", ex.getMessage()).log("cannot retire old VM");
        }
    }

    @Override
    public void close() {
        try {
            worker.submit(() -> {
                if (standbyRam != null) {
                    standbyRam.close();
                }
                if (standby != null) {
                    retire(standby);
                }
                if (svm != null && !tookOver) {
                    retire(svm);
                }
                retireStarting();
            }).get(90, TimeUnit.SECONDS);
        } catch (Exception e) {
            log.atWarn().addKeyValue("pair", pair).addKeyValue("reason", e.toString()).log("unclean sink shutdown");
        }
        worker.shutdownNow();
        starter.shutdownNow();
    }
}
