package dev.colo.checkpoint.engine;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import com.google.protobuf.ByteString;
import dev.colo.checkpoint.coordinator.CheckpointRecord;
import dev.colo.checkpoint.coordinator.CoordinatorConfig;
import dev.colo.checkpoint.coordinator.Trigger;
import dev.colo.checkpoint.link.proto.Envelope;
import dev.colo.checkpoint.ship.Codec;
import dev.colo.hypervisor.DomainRef;
import dev.colo.testkit.SimulatedHypervisor;
import java.time.Duration;
import java.util.List;
import java.util.Random;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicReference;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/** The whole engine, both halves, on the simulated hypervisor with an in-memory link. */
class CheckpointEngineScenarioTest {
    static final int MIB = 4;
    static final String SHARED = "<memoryBacking><source type='file'/><access mode='shared'/></memoryBacking>";
    final SimulatedHypervisor sim = new SimulatedHypervisor();
    final List<CheckpointRecord> records = new CopyOnWriteArrayList<>();
    final List<Long> released = new CopyOnWriteArrayList<>();
    final AtomicBoolean corruptNextBatch = new AtomicBoolean();
    PrimaryCheckpointEngine engine;
    SecondaryCheckpointSink sink;
    DomainRef pvm;

    @BeforeEach
    void pair() {
        pvm = sim.define("<domain><name>pvm</name><memory unit='MiB'>" + MIB + "</memory>" + SHARED + "</domain>");
        sim.start(pvm, false);
        AtomicReference<SecondaryCheckpointSink> sinkRef = new AtomicReference<>();
        AtomicReference<PrimaryCheckpointEngine> engineRef = new AtomicReference<>();
        LinkPort toSecondary = new LinkPort() {
            @Override
            public boolean send(Envelope m) {
                if (m.getBodyCase() == Envelope.BodyCase.PAGES && corruptNextBatch.getAndSet(false)) {
                    byte[] d = m.getPages().getData().toByteArray();
                    d[d.length / 2] ^= 1;
                    m = m.toBuilder().setPages(m.getPages().toBuilder().setData(ByteString.copyFrom(d))).build();
                }
                sinkRef.get().onLinkMessage(m);
                return true;
            }

            @Override
            public boolean writable() {
                return true;
            }
        };
        LinkPort toPrimary = new LinkPort() {
            @Override
            public boolean send(Envelope m) {
                engineRef.get().onLinkMessage(m);
                return true;
            }

            @Override
            public boolean writable() {
                return true;
            }
        };
        sink = new SecondaryCheckpointSink("web1", sim, seq -> "<domain><name>svm-" + seq + "</name><memory unit='MiB'>" + MIB + "</memory>"
                + SHARED + "<qemu:commandline><qemu:arg value='-incoming'/><qemu:arg value='defer'/></qemu:commandline></domain>",
                (long) MIB << 20, toPrimary, (epoch, svm, retired) -> { });
        sinkRef.set(sink);
        CoordinatorConfig cfg = new CoordinatorConfig(2_000_000_000L, 5_000_000_000L, 2_000_000_000L, 10_000_000_000L, 10_000_000_000L, 0,
                50_000_000L);
        engine = new PrimaryCheckpointEngine("web1", sim, pvm, toSecondary, Codec.LZ4, cfg, new PrimaryCheckpointEngine.Listener() {
            @Override
            public void onRelease(long epoch) {
                released.add(epoch);
            }

            @Override
            public void onRecord(CheckpointRecord r) {
                records.add(r);
            }
        });
        engineRef.set(engine);
        sink.start();
        engine.start();
    }

    @AfterEach
    void stop() {
        engine.close();
        sink.close();
    }

    void assertSvmIsACopyOfThePvm() {
        DomainRef svm = sink.currentSvm();
        assertThat(svm).isNotNull();
        assertThat(sim.guestRead(svm.name(), 0, MIB << 20)).as("SVM RAM").isEqualTo(sim.guestRead("pvm", 0, MIB << 20));
        assertThat(sim.deviceStateOf(svm.name())).isEqualTo(sim.deviceStateOf("pvm"));
    }

    void awaitEpoch(long e) {
        await().atMost(Duration.ofSeconds(20)).until(() -> engine.committedEpoch() >= e);
        await().atMost(Duration.ofSeconds(5)).until(() -> sink.currentSvm() != null);
    }

    @Test
    void everyCheckpointMakesTheSvmAnExactCopy() {
        awaitEpoch(1);
        assertThat(records.get(0).full()).isTrue();
        assertSvmIsACopyOfThePvm();
        Random rnd = new Random(5);
        for (int i = 2; i <= 6; i++) {
            for (int k = 0; k < 20; k++) {
                sim.guestWrite("pvm", rnd.nextInt((MIB << 20) - 8), new byte[] {(byte) rnd.nextInt(), (byte) rnd.nextInt()});
            }
            sim.setDeviceState("pvm", "cpu@" + i);
            engine.trigger(Trigger.ON_DEMAND, "test " + i);
            awaitEpoch(i);
            assertSvmIsACopyOfThePvm();
            CheckpointRecord r = records.get(records.size() - 1);
            assertThat(r.full()).isFalse();
            assertThat(r.dirtyPages()).isBetween(1L, 40L);
        }
        assertThat(released).containsExactly(1L, 2L, 3L, 4L, 5L, 6L);
        assertThat(sim.qmpLog().stream().filter(s -> s.startsWith("svm-")).count()).isPositive();
    }

    @Test
    void aCorruptedBatchAbortsAndAFullResyncFollows() {
        awaitEpoch(1);
        sim.guestWrite("pvm", 12_345, new byte[] {1, 2, 3});
        corruptNextBatch.set(true);
        engine.trigger(Trigger.DIVERGENCE, "payload mismatch");
        awaitEpoch(2);
        assertThat(records).anySatisfy(r -> assertThat(r.outcome()).contains("secondary: CORRUPT"));
        CheckpointRecord last = records.get(records.size() - 1);
        assertThat(last.committed()).isTrue();
        assertThat(last.full()).as("the checkpoint after an abort is full").isTrue();
        assertSvmIsACopyOfThePvm();
        assertThat(released).containsExactly(1L, 2L);
    }

    @Test
    void aPvmThatDoesNotPauseIsLeftRunningAndResyncedLater() {
        awaitEpoch(1);
        sim.injectQmpTimeout("pvm", "stop");
        engine.trigger(Trigger.ON_DEMAND, "will time out");
        await().atMost(Duration.ofSeconds(10)).until(() -> records.size() >= 2);
        assertThat(records.get(1).outcome()).contains("pause failed");
        sim.clearFaults();
        awaitEpoch(2);
        assertThat(sim.state(pvm)).isEqualTo(dev.colo.hypervisor.DomainState.RUNNING);
        assertSvmIsACopyOfThePvm();
    }
}
