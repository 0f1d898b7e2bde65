package dev.colo.daemon.node;

import dev.colo.checkpoint.link.proto.PairReply;
import dev.colo.checkpoint.link.proto.PairRequest;
import dev.colo.checkpoint.link.proto.Status;
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
 * pair request (control lane), and on the secondary's OK start the checkpoint engine, whose first
 * full checkpoint makes the pair PROTECTED. Each failure ends the attempt with a reason the
 * operator can act on.
 */
final class PairingWorkflow {
    private static final long REPLY_TIMEOUT_NS = 60_000_000_000L;
    private static final long NIC_TIMEOUT_NS = 20_000_000_000L;
    private static final long NIC_POLL_NS = 20_000_000L;

    /** What pairing needs of the primary role. */
    interface Host {
        boolean pvmNicConnected();

        /** The PVM is ready and the secondary said yes: start the engine on {@code pvm}. */
        void startEngine(DomainRef pvm, PairRequest request);

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
    private CompletableFuture<Map<String, Object>> pairing;
    private Consumer<PairReply> awaitingReply;
    private Cancellable replyTimeout = Cancellable.NONE;

    PairingWorkflow(DaemonConfig cfg, NodeRuntime runtime, Hypervisor hv, EventJournal events, FailoverControl failover, PeerLink link,
            Envelopes envelopes, DomainShaper shaper, Host host) {
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
            List<String> disks = current.writableDisks();
            if (!disks.isEmpty()) {
                // Without disk replication the SVM would write to whatever file the secondary has,
                // and a failover would silently lose what clients were told was stored.
                throw new OperationException("domain '" + vm + "' has writable disks " + String.join(", ", disks)
                        + ", and colo does not replicate disks yet: its SVM would run on a different disk. Protect a diskless domain, "
                        + "or mark the disks <readonly/> if they are identical on both hosts");
            }
            String mac = current.macAddresses().get(0);
            DomainXml wanted = shaper.pvm(current, mac);
            boolean running = hv.state(d).isActive();
            PairRequest req = PairRequest.newBuilder().setVm(vm).setDomainXml(wanted.toXml()).setGuestRamBytes(wanted.memoryBytes())
                    .setMac(mac).setIp(cfg.vm().ip()).setLastCheckpointSeq(lastSeq).build();
            if (host.pvmNicConnected() && running && current.hasSharedFileMemory()) {
                DomainRef ready = d;
                control.execute(() -> ask(ready, req));
                return;
            }
            events.info("pvm_restart", "restarting the domain as a PVM: shared-file RAM, NIC through the colo proxy", "was_running", running,
                    "shared_ram", current.hasSharedFileMemory());
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
            awaitNic(started, req, runtime.nowNs() + NIC_TIMEOUT_NS);
        } catch (Exception e) {
            fail(e instanceof OperationException ? e.getMessage() : String.valueOf(e.getMessage()));
        }
    }

    private void awaitNic(DomainRef pvm, PairRequest req, long deadlineNs) {
        if (host.pvmNicConnected()) {
            control.execute(() -> ask(pvm, req));
            return;
        }
        if (runtime.nowNs() > deadlineNs) {
            fail("the PVM's NIC did not connect to the proxy on 127.0.0.1:" + cfg.vm().proxyPort() + " within 20 s (is [libvirt] vm-netns right?)");
            return;
        }
        work.schedule(NIC_POLL_NS, () -> awaitNic(pvm, req, deadlineNs));
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
            events.info("pairing", "secondary accepted the pair; first full checkpoint next", "last_checkpoint", req.getLastCheckpointSeq());
            host.startEngine(pvm, req);
        };
        if (!link.connected() || !link.send(envelopes.builder().setPairRequest(req).build())) {
            fail("replication link dropped while pairing");
            return;
        }
        replyTimeout = control.schedule(REPLY_TIMEOUT_NS, () -> fail("no answer from the secondary in 60 s"));
    }

    /** The secondary's answer to our request. Control lane. */
    void onPairReply(PairReply reply) {
        Consumer<PairReply> r = awaitingReply;
        awaitingReply = null;
        replyTimeout.cancel();
        if (r != null) {
            r.accept(reply);
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
