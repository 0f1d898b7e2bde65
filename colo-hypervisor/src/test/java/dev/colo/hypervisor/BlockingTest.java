package dev.colo.hypervisor;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatCode;

import io.netty.util.concurrent.FastThreadLocalThread;
import java.util.concurrent.atomic.AtomicReference;
import org.junit.jupiter.api.Test;

class BlockingTest {
    @Test
    void refusesOnNettyThreadsAndAllowsElsewhere() throws Exception {
        assertThatCode(() -> Blocking.assertAllowed("test")).doesNotThrowAnyException();
        AtomicReference<Throwable> seen = new AtomicReference<>();
        Thread t = new FastThreadLocalThread(() -> {
            try {
                Blocking.assertAllowed("QMP stop");
            } catch (Throwable e) {
                seen.set(e);
            }
        }, "fake-event-loop");
        t.start();
        t.join();
        assertThat(seen.get()).isInstanceOf(IllegalStateException.class)
                .hasMessageContaining("QMP stop").hasMessageContaining("fake-event-loop");
    }

    @Test
    void deviceStateIsImmutable() {
        byte[] raw = {1, 2, 3};
        DeviceState s = new DeviceState(raw);
        raw[0] = 9;
        s.bytes()[1] = 9;
        assertThat(s.bytes()).containsExactly(1, 2, 3);
        assertThat(s).isEqualTo(new DeviceState(new byte[] {1, 2, 3}));
    }
}
