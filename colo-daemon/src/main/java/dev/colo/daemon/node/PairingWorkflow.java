package dev.colo.daemon.node;

import dev.colo.checkpoint.disk.DiskRelay;
import dev.colo.checkpoint.link.proto.PairReply;
import dev.colo.checkpoint.link.proto.PairRequest;
import dev.colo.checkpoint.link.proto.ReplicatedDisk;
import dev.colo.checkpoint.link.proto.Status;
import dev.colo.checkpoint.ship.Codec;
import dev.colo.daemon.config.DaemonConfig;
import dev.colo.daemon.control.OperationException;
import dev.colo.daemon.events.EventJournal;
import dev.colo.daemon.failover.FailoverStateMachine.State;
import dev.colo.host.libvirt.DomainXml;
import dev.colo.hypervisor.DomainRef;
import dev.colo.hypervisor.Hypervisor;
import dev.colo.runtime.Cancellable;
import dev.colo.runtime.Lane;
import dev.colo.runtime.NodeRuntime;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.function.BooleanSupplier;
import java.util.function.Consumer;
import java.util.function.Supplier;

/**
 * Primary: pairing with the secondary, one step after the other, none blocking a lane: make the
 * domain a PVM (work lane; a domain not yet in shape is redefined and restarted once), send the
 * pair request (control lane), and on the secondary's OK copy the writable disks while the PVM
 * runs (QEMU's mirrors into {@link PvmDisks}), then start the checkpoint engine, whose first full
 * checkpoint makes the pair PROTECTED. Each failure ends the attempt with a reason the
 * operator can act on.
 */
final class PairingWorkflow {
    private static final long REPLY_TIMEOUT_NS = 60_000_000_000L;
    private static final long NIC_TIMEOUT_NS = 20_000_000_000L;
    private static final long NIC_POLL_NS = 20_000_000L;
    private static final long COPY_POLL_NS = 250_000_000L;
    private static final long COPY_EVENT_NS = 5_000_000_000L;
    private static final java.time.Duration QMP = java.time.Duration.ofSeconds(10);

    /** What pairing needs of the primary role. */
    interface Host {
        boolean pvmNicConnected();

        /**
         * The PVM is ready, the secondary said yes and the disks (if any) are copied: start the
         * engine on {@code pvm}; it owns {@code disks} (null without disks) from now on.
         */
        void startEngine(DomainRef pvm, PairRequest request, PvmDisks disks);

        /** Where the relays of this pairing's disks send the copy and report to. */
        DiskRelay.Link diskLink();

        /** The disks kept from the last pairing, still logging for a resume (null: none). */
        PvmDisks retainedDisks();

        /** The kept disks cannot be resumed: stop their mirrors (blocking). */
        void discardRetainedDisks();

        /** The domain is being restarted by us: its lifecycle events are ours, not a crash. */
        void restarting(boolean on);
    }

    private final DaemonConfig cfg;
    private final NodeRuntime runtime;
    private final Hypervisor hv;
    private final EventJournal events;
    private final FailoverControl failover;
    private final PeerLink link;
    private final Envelopes envelopes;
    private final DomainShaper shaper;
    private final Host host;
    private final Lane control;
    private final Lane work;
    private final DiskHost diskHost;
    private CompletableFuture<Map<String, Object>> pairing;
    /** The disk copy of the pairing in progress, for status; null when none runs. */
    private volatile CopyStatus copy;
    /** The disks a pairing is copying, until the engine takes them or the copy ends. */
    private volatile PvmDisks copying;

    /** How far the disk copy of the pairing in progress is, and since when it runs (runtime clock). */
    record CopyStatus(PvmDisks.Copy progress, long startedNs) {}
    private Consumer<PairReply> awaitingReply;
    private Cancellable replyTimeout = Cancellable.NONE;

    PairingWorkflow(DaemonConfig cfg, NodeRuntime runtime, Hypervisor hv, EventJournal events, FailoverControl failover, PeerLink link,
            Envelopes envelopes, DomainShaper shaper, Host host, DiskHost diskHost) {
        this.diskHost = diskHost;
        this.cfg = cfg;
        this.runtime = runtime;
        this.hv = hv;
        this.events = events;
        this.failover = failover;
        this.link = link;
        this.envelopes = envelopes;
        this.shaper = shaper;
        this.host = host;
        this.control = runtime.lane("control");
        this.work = runtime.lane("work");
    }

    /** Starts pairing (control lane); the future completes when PROTECTED, or with the failure. */
    CompletableFuture<Map<String, Object>> start(String why, long lastSeq) {
        if (pairing != null && !pairing.isDone()) {
            return pairing;
        }
        CompletableFuture<Map<String, Object>> done = new CompletableFuture<>();
        if (failover.state() != State.UNPROTECTED) {
            done.completeExceptionally(new OperationException("cannot pair in state " + failover.state() + " (pair works from UNPROTECTED)"));
            return done;
        }
        if (!link.connected()) {
            done.completeExceptionally(new OperationException("peer unreachable: the replication link to " + cfg.peer().name() + " ("
                    + cfg.peer().link().getHostString() + ":" + cfg.peer().link().getPort()
                    + ") is not connected; check that its daemon runs, the address, and the pair's certificates"));
            return done;
        }
        pairing = done;
        failover.machine().onPairingStarted(why, runtime.nowNs());
        failover.mirror();
        work.execute(() -> preparePvm(lastSeq));
        return done;
    }

    /** The pairing in progress, if any. */
    CompletableFuture<Map<String, Object>> current() {
        return pairing;
    }

    /** Makes the domain a PVM: RAM in a shared file the daemon maps, its NIC a socket to our proxy. Work lane. */
    private void preparePvm(long lastSeq) {
        String vm = cfg.vm().domain();
        try {
            DomainRef d = hv.lookup(vm).orElseThrow(() -> new OperationException("domain '" + vm + "' not found in libvirt ("
                    + cfg.libvirt().uri() + "); define it first (virsh define)"));
            DomainXml current = DomainXml.parse(hv.describe(d, false));
            if (current.macAddresses().isEmpty()) {
                throw new OperationException("domain '" + vm + "' has no network interface to protect");
            }
            DiskCheck.Result disks = DiskCheck.check(current.disks(), diskHost::exists);
            if (!disks.refusals().isEmpty()) {
                throw new OperationException("domain '" + vm + "' cannot be protected: " + String.join("; ", disks.refusals()));
            }
            String mac = current.macAddresses().get(0);
            DomainXml wanted = shaper.pvm(current, mac);
            // Ask the secondary before anything changes here (a restart of the domain, say): a
            // refusal then leaves everything as it was.
            PairRequest.Builder check = PairRequest.newBuilder().setVm(vm).setCheckOnly(true).setGuestRamBytes(wanted.memoryBytes());
            for (DomainXml.Disk disk : disks.replicated()) {
                check.addDisks(ReplicatedDisk.newBuilder().setTarget(disk.target())
                        .setSizeBytes(diskHost.imageSize(java.nio.file.Path.of(disk.source()), disk.format())));
            }
            PairRequest checkRequest = check.build();
            control.execute(() -> precheck(checkRequest, () -> work.execute(() -> shapeAndAsk(d, current, wanted, mac, disks.replicated(),
                    lastSeq))));
        } catch (Exception e) {
            fail(e instanceof OperationException ? e.getMessage() : String.valueOf(e.getMessage()));
        }
    }

    /** Control lane: the pre-check; {@code then} runs only if the secondary would accept. */
    private void precheck(PairRequest check, Runnable then) {
        if (pairing == null || pairing.isDone()) {
            return;
        }
        awaitingReply = reply -> {
            if (reply.getStatus() != Status.OK) {
                fail("secondary refused (nothing was changed): " + reply.getStatus() + " " + reply.getDetail());
                return;
            }
            then.run();
        };
        if (!link.connected() || !link.send(envelopes.builder().setPairRequest(check).build())) {
            fail("replication link dropped while pairing");
            return;
        }
        replyTimeout = control.schedule(REPLY_TIMEOUT_NS, () -> fail("no answer from the secondary in 60 s"));
    }

    /** The secondary would accept: shape the domain (restarting it once if it must) and ask for real. Work lane. */
    private void shapeAndAsk(DomainRef d, DomainXml current, DomainXml wanted, String mac, List<DomainXml.Disk> disks, long lastSeq) {
        try {
            boolean running = hv.state(d).isActive();
            if (host.pvmNicConnected() && running && DomainShaper.shapedAsPvm(current)) {
                askWhenReady(d, mac, disks, lastSeq);
                return;
            }
            events.info("pvm_restart", "restarting the domain as a PVM: shared-file RAM, NIC through the colo proxy, colo's QMP monitor",
                    "was_running", running, "shared_ram", current.hasSharedFileMemory(), "colo_monitor", current.directMonitor().isPresent());
            host.restarting(true);
            DomainRef started;
            try {
                if (running) {
                    hv.destroy(d);
                }
                started = hv.define(wanted.toXml());
                hv.start(started, false);
            } finally {
                host.restarting(false);
            }
            awaitNic(started, mac, disks, lastSeq, runtime.nowNs() + NIC_TIMEOUT_NS);
        } catch (Exception e) {
            fail(e instanceof OperationException ? e.getMessage() : String.valueOf(e.getMessage()));
        }
    }

    private void awaitNic(DomainRef pvm, String mac, List<DomainXml.Disk> disks, long lastSeq, long deadlineNs) {
        if (host.pvmNicConnected()) {
            askWhenReady(pvm, mac, disks, lastSeq);
            return;
        }
        if (runtime.nowNs() > deadlineNs) {
            fail("the PVM's NIC did not connect to the proxy on 127.0.0.1:" + cfg.vm().proxyPort() + " within 20 s (is [libvirt] vm-netns right?)");
            return;
        }
        work.schedule(NIC_POLL_NS, () -> awaitNic(pvm, mac, disks, lastSeq, deadlineNs));
    }

    /**
     * The PVM runs as it must: the request carries its persistent definition (where libvirt put
     * every device: an SVM must have them at the same addresses) and its disks' sizes. Work lane.
     */
    private void askWhenReady(DomainRef pvm, String mac, List<DomainXml.Disk> disks, long lastSeq) {
        try {
            DomainXml defined = shaper.pvm(DomainXml.parse(hv.describe(pvm, true)), mac);
            PairRequest.Builder req = PairRequest.newBuilder().setVm(cfg.vm().domain()).setDomainXml(defined.toXml())
                    .setGuestRamBytes(defined.memoryBytes()).setMac(mac).setIp(cfg.vm().ip()).setLastCheckpointSeq(lastSeq)
                    .setPromotionLeaseMs(cfg.promotionLeaseMs());
            for (DomainXml.Disk disk : disks) {
                req.addDisks(ReplicatedDisk.newBuilder().setTarget(disk.target()).setSizeBytes(hv.diskSize(pvm, disk.target(), QMP)));
            }
            PvmDisks kept = host.retainedDisks();
            if (!disks.isEmpty() && kept != null && kept.resumable()) {
                // Every write since the secondary's last acknowledged checkpoint is still here: its copy can catch up.
                req.setDiskLineage(kept.lineage()).setDiskResume(true);
            } else {
                if (kept != null) {
                    host.discardRetainedDisks();
                }
                req.setDiskLineage(java.util.UUID.randomUUID().toString());
            }
            PairRequest built = req.build();
            control.execute(() -> ask(pvm, built));
        } catch (Exception e) {
            fail("cannot describe the PVM for the secondary: " + e.getMessage());
        }
    }

    /** Control lane: the PVM is ready; ask the secondary. */
    private void ask(DomainRef pvm, PairRequest req) {
        if (pairing == null || pairing.isDone()) {
            return;
        }
        awaitingReply = reply -> {
            if (reply.getStatus() != Status.OK) {
                fail("secondary refused: " + reply.getStatus() + " " + reply.getDetail());
                return;
            }
            if (req.getDisksCount() == 0) {
                events.info("pairing", "secondary accepted the pair; guest RAM is copied while the PVM runs, then the first checkpoint",
                        "last_checkpoint", req.getLastCheckpointSeq());
                host.startEngine(pvm, req, null);
                return;
            }
            PvmDisks kept = host.retainedDisks();
            if (reply.getDisksResumed() && req.getDiskResume() && kept != null && kept.lineage().equals(req.getDiskLineage())) {
                if (!kept.resumable()) {
                    // The kept writes passed their limit while we asked: the secondary's copy cannot catch up.
                    work.execute(host::discardRetainedDisks); // blocking: not on the control lane
                    fail("the writes kept for the secondary's disk copies were dropped while pairing (too many); the next attempt copies "
                            + "the disks again");
                    return;
                }
                long held = kept.epochs().heldBytes();
                events.info("pairing", "secondary resumed its disk copies; the writes kept since its last checkpoint go with the first "
                        + "checkpoint, no disk copy", "last_checkpoint", req.getLastCheckpointSeq(), "lineage", req.getDiskLineage(),
                        "kept_bytes", held);
                kept.resume();
                host.startEngine(pvm, req, kept);
                return;
            }
            long bytes = req.getDisksList().stream().mapToLong(ReplicatedDisk::getSizeBytes).sum();
            events.info("pairing", "secondary accepted the pair; the disks, then guest RAM, are copied while the PVM runs, then the first "
                    + "checkpoint", "last_checkpoint",
                    req.getLastCheckpointSeq(), "disks", req.getDisksCount(), "disk_bytes", bytes);
            work.execute(() -> copyDisks(pvm, req));
        };
        if (!link.connected() || !link.send(envelopes.builder().setPairRequest(req).build())) {
            fail("replication link dropped while pairing");
            return;
        }
        replyTimeout = control.schedule(REPLY_TIMEOUT_NS, () -> fail("no answer from the secondary in 60 s"));
    }

    /** Starts QEMU's mirror of every disk into its relay; the copy runs while the PVM runs. Work lane. */
    private void copyDisks(DomainRef pvm, PairRequest req) {
        if (pairing == null || pairing.isDone()) {
            return;
        }
        PvmDisks disks;
        try {
            if (host.retainedDisks() != null) {
                host.discardRetainedDisks(); // its mirror and sockets would clash with the new copy's
            }
            disks = PvmDisks.start(hv, diskHost, pvm, req.getDiskLineage(), req.getDisksList(), cfg.disks().nbdDir(), Codec.fromWire(cfg.vm().codec()), host.diskLink(),
                    cfg.disks().logTriggerBytes(), cfg.disks().logLimitBytes());
        } catch (Exception e) {
            fail("cannot start copying the disks: " + e.getMessage());
            return;
        }
        copying = disks;
        long t0 = runtime.nowNs();
        work.execute(() -> awaitCopy(pvm, req, disks, t0, t0));
    }

    /** The daemon stops: a disk copy in progress stops its mirrors now (blocking). */
    void closeCopy() {
        PvmDisks d = copying;
        copying = null;
        if (d != null) {
            d.close();
        }
    }

    /** Polls the copy until every disk is copied and mirrored write by write, then starts the engine. Work lane. */
    private void awaitCopy(DomainRef pvm, PairRequest req, PvmDisks disks, long startNs, long lastEventNs) {
        if (pairing == null || pairing.isDone()) {
            copy = null;
            copying = null;
            disks.close();
            return;
        }
        PvmDisks.Copy now;
        try {
            now = disks.copy();
        } catch (RuntimeException e) {
            now = new PvmDisks.Copy(0, 0, false, e.getMessage());
        }
        copy = new CopyStatus(now, startNs);
        if (now.error() != null) {
            copy = null;
            copying = null;
            disks.close();
            fail("disk copy failed: " + now.error());
            return;
        }
        long t = runtime.nowNs();
        double seconds = Math.max(1e-3, (t - startNs) / 1e9);
        double rate = now.doneBytes() / seconds;
        if (now.ready() || t - lastEventNs >= COPY_EVENT_NS) {
            events.info(now.ready() ? "disk_copied" : "disk_copy", now.ready() ? "disks copied; every write is mirrored from now on"
                    : "copying the PVM's disks to the secondary", "done_bytes", now.doneBytes(), "total_bytes", now.totalBytes(),
                    "rate_mib_s", Math.round(rate / (1 << 20) * 10) / 10.0, "eta_s",
                    now.ready() ? 0 : Math.round(rate > 0 ? (now.totalBytes() - now.doneBytes()) / rate : -1), "elapsed_s",
                    Math.round(seconds * 10) / 10.0);
            lastEventNs = t;
        }
        if (now.ready()) {
            control.execute(() -> {
                copy = null;
                copying = null;
                if (pairing == null || pairing.isDone()) {
                    work.execute(disks::close);
                    return;
                }
                host.startEngine(pvm, req, disks);
            });
            return;
        }
        long last = lastEventNs;
        work.schedule(COPY_POLL_NS, () -> awaitCopy(pvm, req, disks, startNs, last));
    }

    /** The disk copy in progress, for status; null when none runs. */
    CopyStatus copyProgress() {
        return copy;
    }

    /** The secondary's answer to our request. Control lane. */
    void onPairReply(PairReply reply) {
        Consumer<PairReply> r = awaitingReply;
        awaitingReply = null;
        replyTimeout.cancel();
        if (r != null) {
            try {
                r.accept(reply);
            } catch (RuntimeException e) {
                // Never leave the pairing waiting for an answer that already came.
                fail("cannot act on the secondary's answer: " + (e.getMessage() == null ? e.toString() : e.getMessage()));
            }
        }
    }

    /** The first checkpoint of the pairing committed and the pair is PROTECTED. Control lane. */
    void onProtected(Supplier<Map<String, Object>> status) {
        if (pairing != null && !pairing.isDone()) {
            pairing.complete(status.get());
        }
    }

    /** Ends the attempt: serve unprotected, retry after the backoff. Any lane. */
    void fail(String why) {
        control.execute(() -> {
            awaitingReply = null;
            replyTimeout.cancel();
            if (pairing == null || pairing.isDone()) {
                return;
            }
            events.error("pairing_failed", "pairing failed", "reason", why);
            failover.machine().onPairingFailed(why, runtime.nowNs());
            failover.mirror();
            pairing.completeExceptionally(new OperationException(why));
        });
    }

    /** Fails the attempt in progress unless {@code stillPairing} (e.g. the secondary went away meanwhile). */
    void failIfStuck(BooleanSupplier stillPairing, String why) {
        if (pairing != null && !pairing.isDone() && !stillPairing.getAsBoolean()) {
            fail(why);
        }
    }
}
