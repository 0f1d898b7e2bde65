package dev.colo.checkpoint.dirty;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.colo.hypervisor.DomainRef;
import dev.colo.hypervisor.GuestRam;
import dev.colo.testkit.SimulatedHypervisor;
import java.time.Duration;
import java.util.Random;
import java.util.TreeSet;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

class DirtyPageScannerTest {
    final ExecutorService pool = Executors.newFixedThreadPool(2);
    final DirtyPageScanner scanner = new DirtyPageScanner(pool);
    final SimulatedHypervisor sim = new SimulatedHypervisor();

    @AfterEach
    void stop() {
        pool.shutdownNow();
    }

    DomainRef guest(int mib) {
        DomainRef d = sim.define("<domain><name>g</name><memory unit='MiB'>" + mib + "</memory>"
                + "<memoryBacking><source type='file'/><access mode='shared'/></memoryBacking></domain>");
        sim.start(d, false);
        return d;
    }

    @Test
    void findsExactlyThePagesWrittenSinceTheLastScan() {
        long seed = Long.getLong("colo.seed", 11);
        Random rnd = new Random(seed);
        DomainRef d = guest(16);
        GuestRam ram = sim.mapGuestRam(d);
        ShadowMemory shadow = ShadowMemory.like(ram);
        shadow.copyAll(ram);
        for (int round = 0; round < 20; round++) {
            TreeSet<Long> expected = new TreeSet<>();
            for (int k = rnd.nextInt(200); k > 0; k--) {
                long page = rnd.nextInt((int) ram.pageCount());
                // Any byte of the page, including its first and last.
                int within = rnd.nextBoolean() ? rnd.nextInt(GuestRam.PAGE_SIZE) : (rnd.nextBoolean() ? 0 : GuestRam.PAGE_SIZE - 1);
                sim.guestWrite("g", page * GuestRam.PAGE_SIZE + within, new byte[] {(byte) (1 + rnd.nextInt(255))});
                expected.add(page);
            }
            sim.pause(d, Duration.ofSeconds(1));
            long[] dirty = scanner.scanAndUpdate(ram, shadow);
            sim.resume(d, Duration.ofSeconds(1));
            // Writing the same value twice may undo a change; only real differences count.
            assertThat(dirty).as("seed=%d round=%d", seed, round).isSorted();
            assertThat(expected).containsAll(java.util.Arrays.stream(dirty).boxed().toList());
            assertThat(scanner.scanAndUpdate(ram, shadow)).as("the shadow caught up").isEmpty();
        }
    }

    @Test
    void firstAndLastPagesAndStripeEdgesAreFound() {
        DomainRef d = guest(20);
        GuestRam ram = sim.mapGuestRam(d);
        ShadowMemory shadow = ShadowMemory.like(ram);
        long last = ram.pageCount() - 1;
        long edge = DirtyPageScanner.STRIPE / GuestRam.PAGE_SIZE;
        for (long p : new long[] {0, edge - 1, edge, last}) {
            sim.guestWrite("g", p * GuestRam.PAGE_SIZE + 7, new byte[] {9});
        }
        assertThat(scanner.scanAndUpdate(ram, shadow)).containsExactly(0, edge - 1, edge, last);
    }

    @Test
    void sizeMismatchIsRefused() {
        DomainRef d = guest(4);
        assertThatThrownBy(() -> scanner.scanAndUpdate(sim.mapGuestRam(d), new ShadowMemory(8 << 20, 1 << 20)))
                .hasMessageContaining("shadow");
    }

    @Test
    void softDirtyProbeGivesAnAnswerWithAReason() {
        SoftDirty.Support s = SoftDirty.probe();
        assertThat(s.detail()).isNotBlank();
        System.out.println("soft-dirty on this kernel: " + s);
    }
}
