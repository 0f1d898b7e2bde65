package dev.colo.daemon.checkpoint;

import static org.assertj.core.api.Assertions.assertThat;

import com.google.protobuf.ByteString;
import dev.colo.checkpoint.coordinator.CheckpointRecord;
import dev.colo.checkpoint.coordinator.CoordinatorConfig;
import dev.colo.checkpoint.coordinator.Trigger;
import dev.colo.checkpoint.engine.LinkPort;
import dev.colo.checkpoint.engine.PrimaryCheckpointEngine;
import dev.colo.checkpoint.engine.SecondaryCheckpointSink;
import dev.colo.checkpoint.link.proto.Envelope;
import dev.colo.checkpoint.ship.Codec;
import dev.colo.hypervisor.DomainRef;
import dev.colo.hypervisor.DomainState;
import dev.colo.runtime.NodeIdentity;
import dev.colo.testkit.FaultInjectingHypervisor;
import dev.colo.testkit.SimulatedHypervisor;
import dev.colo.testkit.sim.SimRuntime;
import dev.colo.testkit.sim.SimWorld;
import java.util.List;
import java.util.Random;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.function.Consumer;

/**
 * The engine on two simulated hosts in virtual time: the PVM on host A, standbys on host B, each
 * host its own simulated hypervisor and runtime, joined by a link that delivers in order after a
 * latency. Nothing sleeps; a scenario step runs the world until its outcome.
 */
final class SimulatedEngineRig implements EngineRig {
    static final int MIB = 4;
    static final long LINK_LATENCY_NS = 200_000L;
    static final long WAIT_NS = 120_000_000_000L;
    static final String SHARED = "<memoryBacking><source type='file'/><access mode='shared'/></memoryBacking>";

    final SimWorld world = new SimWorld(42);
    final SimulatedHypervisor hostA = new SimulatedHypervisor();
    final SimulatedHypervisor hostB = new SimulatedHypervisor();
    final FaultInjectingHypervisor faultyA = new FaultInjectingHypervisor(hostA);
    final SimRuntime runtimeA = new SimRuntime(world, new NodeIdentity("host-a", "pvm", "primary"));
    final SimRuntime runtimeB = new SimRuntime(world, new NodeIdentity("host-b", "pvm", "secondary"));
    final List<CheckpointRecord> records = new CopyOnWriteArrayList<>();
    final List<Long> released = new CopyOnWriteArrayList<>();
    final AtomicBoolean corruptNext = new AtomicBoolean();
    /** The next RAM pre-copy batch is lost on the link, as when the link drops and comes back meanwhile. */
    final AtomicBoolean loseNextPrecopyBatch = new AtomicBoolean();
    /** The next RAM pre-copy batch arrives with a flipped bit. */
    final AtomicBoolean corruptNextPrecopyBatch = new AtomicBoolean();
    final Random rnd = new Random(5);
    final PrimaryCheckpointEngine engine;
    final SecondaryCheckpointSink sink;
    final DomainRef pvm;
    private int work;

    /** @param reuseSvm checkpoints go into the running SVM in place (the daemon's default); false: a fresh standby each */
    SimulatedEngineRig(boolean reuseSvm) {
        pvm = hostA.define("<domain><name>pvm</name><memory unit='MiB'>" + MIB + "</memory>" + SHARED + "</domain>");
        hostA.start(pvm, false);
        SecondaryCheckpointSink[] sinkRef = new SecondaryCheckpointSink[1];
        PrimaryCheckpointEngine[] engineRef = new PrimaryCheckpointEngine[1];
        LinkPort toSecondary = link(m -> {
            if (m.getBodyCase() == Envelope.BodyCase.PAGES && corruptNext.getAndSet(false)) {
                byte[] d = m.getPages().getData().toByteArray();
                d[d.length / 2] ^= 1;
                m = m.toBuilder().setPages(m.getPages().toBuilder().setData(ByteString.copyFrom(d))).build();
            }
            if (m.getBodyCase() == Envelope.BodyCase.PRECOPY && loseNextPrecopyBatch.getAndSet(false)) {
                return;
            }
            if (m.getBodyCase() == Envelope.BodyCase.PRECOPY && corruptNextPrecopyBatch.getAndSet(false)) {
                byte[] d = m.getPrecopy().getData().toByteArray();
                d[d.length / 2] ^= 1;
                m = m.toBuilder().setPrecopy(m.getPrecopy().toBuilder().setData(ByteString.copyFrom(d))).build();
            }
            sinkRef[0].onLinkMessage(m);
        });
        LinkPort toPrimary = link(m -> engineRef[0].onAck(m.getCheckpointAck()));
        sink = new SecondaryCheckpointSink("web1", runtimeB, hostB, new SecondaryCheckpointSink.StandbyFactory() {
            @Override
            public String define(long n) {
                return "<domain><name>svm-" + n + "</name><memory unit='MiB'>" + MIB + "</memory>" + SHARED
                        + "<qemu:commandline><qemu:arg value='-incoming'/><qemu:arg value='defer'/></qemu:commandline></domain>";
            }

            @Override
            public void retired(DomainRef d) {
            }
        }, (long) MIB << 20, toPrimary, () -> 0, (seq, svm, retired) -> { }, reuseSvm, java.util.Map.of());
        sinkRef[0] = sink;
        CoordinatorConfig cfg = new CoordinatorConfig(2_000_000_000L, 5_000_000_000L, 2_000_000_000L, 10_000_000_000L, 10_000_000_000L, 0,
                500_000_000L);
        engine = new PrimaryCheckpointEngine("web1", runtimeA, faultyA, pvm, toSecondary, Codec.LZ4, cfg,
                new PrimaryCheckpointEngine.Listener() {
                    @Override
                    public void onRelease(long seq) {
                        released.add(seq);
                    }

                    @Override
                    public void onRecord(CheckpointRecord r) {
                        records.add(r);
                    }
                }, 0, () -> 0);
        engineRef[0] = engine;
    }

    /** In order, after a latency, on the simulated timeline. */
    private LinkPort link(Consumer<Envelope> deliver) {
        return new LinkPort() {
            @Override
            public boolean send(Envelope m) {
                world.post(LINK_LATENCY_NS, () -> deliver.accept(m), null);
                return true;
            }

            @Override
            public boolean writable() {
                return true;
            }
        };
    }

    @Override
    public void start() {
        pair();
        assertThat(records.get(0).committed()).as(records.get(0).outcome()).isTrue();
    }

    /** Pairs (the RAM pre-copy, then checkpoints until one commits) without judging the first checkpoint. */
    void pair() {
        sink.start();
        engine.start();
        assertThat(world.runUntil(() -> records.stream().anyMatch(CheckpointRecord::committed) && sink.currentSvm() != null, WAIT_NS))
                .as("a committed checkpoint").isTrue();
    }

    /** Writes into every page of the PVM, so that a page the SVM lacks shows. */
    void guestFillsEveryPage() {
        for (long page = 0; page < (MIB << 20) / 4096; page++) {
            hostA.guestWrite("pvm", page * 4096 + rnd.nextInt(4000), new byte[] {(byte) (1 + rnd.nextInt(255))});
        }
    }

    @Override
    public void guestWorks() {
        for (int k = 0; k < 20; k++) {
            hostA.guestWrite("pvm", rnd.nextInt((MIB << 20) - 8), new byte[] {(byte) rnd.nextInt(), (byte) (1 + rnd.nextInt(255))});
        }
        hostA.setDeviceState("pvm", "cpu@" + (++work));
        world.runFor(50_000_000L);
    }

    @Override
    public CheckpointRecord checkpoint(Trigger trigger, String why) {
        int before = records.size();
        engine.trigger(trigger, why);
        assertThat(world.runUntil(() -> records.size() > before, WAIT_NS)).as("checkpoint finished").isTrue();
        return records.get(before);
    }

    @Override
    public CheckpointRecord awaitCommitAfter(long seq) {
        assertThat(world.runUntil(() -> records.stream().anyMatch(r -> r.committed() && r.seq() > seq), WAIT_NS)).isTrue();
        return records.stream().filter(r -> r.committed() && r.seq() > seq).findFirst().orElseThrow();
    }

    @Override
    public void assertSvmIsACopyOfThePvm() {
        world.runFor(10_000_000L);
        DomainRef svm = sink.currentSvm();
        assertThat(svm).isNotNull();
        assertThat(hostB.guestRead(svm.name(), 0, MIB << 20)).as("SVM RAM").isEqualTo(hostA.guestRead("pvm", 0, MIB << 20));
        assertThat(hostB.deviceStateOf(svm.name())).isEqualTo(hostA.deviceStateOf("pvm"));
    }

    @Override
    public List<CheckpointRecord> records() {
        return records;
    }

    @Override
    public List<Long> released() {
        return released;
    }

    @Override
    public void corruptNextPageBatch() {
        corruptNext.set(true);
    }

    @Override
    public void pvmWillNotPause(boolean on) {
        if (on) {
            faultyA.timeOut("pvm", "stop");
        } else {
            faultyA.clearFaults();
        }
    }

    @Override
    public boolean pvmRunning() {
        world.runFor(10_000_000L);
        return hostA.state(pvm) == DomainState.RUNNING;
    }

    @Override
    public void close() {
        engine.close();
        sink.close();
        world.runFor(1_000_000_000L);
        runtimeA.close();
        runtimeB.close();
    }
}
