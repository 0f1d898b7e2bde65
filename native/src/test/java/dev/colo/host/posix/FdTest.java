package dev.colo.host.posix;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import org.junit.jupiter.api.Test;

class FdTest {
    @Test
    void socketPairCarriesBytesAndSignalsEndOfStream() throws Exception {
        Fd[] p = Fd.socketPair("test");
        try (Fd a = p[0]; Fd b = p[1]) {
            ByteBuffer out = ByteBuffer.allocateDirect(16);
            out.put("hello".getBytes(StandardCharsets.US_ASCII)).flip();
            a.writeFully(out, System.nanoTime() + 1_000_000_000L);
            a.shutdownOutput();
            ByteBuffer in = ByteBuffer.allocateDirect(16);
            long deadline = System.nanoTime() + 1_000_000_000L;
            assertThat(b.read(in, deadline)).isEqualTo(5);
            assertThat(b.read(in, deadline)).isEqualTo(-1);
            in.flip();
            byte[] got = new byte[in.remaining()];
            in.get(got);
            assertThat(new String(got, StandardCharsets.US_ASCII)).isEqualTo("hello");
        }
    }

    @Test
    void aWriteToAPeerThatStoppedReadingEndsAtItsDeadline() throws Exception {
        Fd[] p = Fd.socketPair("test");
        try (Fd a = p[0]; Fd b = p[1]) {
            ByteBuffer out = ByteBuffer.allocateDirect(8 << 20); // far more than the socket buffers hold
            long t0 = System.nanoTime();
            org.junit.jupiter.api.Assertions.assertTimeoutPreemptively(java.time.Duration.ofSeconds(10), () -> {
                assertThatThrownBy(() -> a.writeFully(out, t0 + 200_000_000L)).isInstanceOf(java.io.IOException.class)
                        .hasMessageContaining("timed out");
            });
            assertThat(out.position()).as("some bytes went before the peer's buffer filled").isPositive();
        }
    }

    @Test
    void readReturnsZeroAtTheDeadlineAndCloseIsIdempotent() throws Exception {
        Fd[] p = Fd.socketPair("test");
        p[1].close();
        try (Fd a = p[0]) {
            // The peer closed: end of stream, not a hang.
            assertThat(a.read(ByteBuffer.allocateDirect(8), System.nanoTime() + 500_000_000L)).isEqualTo(-1);
        }
        Fd[] q = Fd.socketPair("test");
        try (Fd a = q[0]; Fd b = q[1]) {
            long t0 = System.nanoTime();
            assertThat(a.read(ByteBuffer.allocateDirect(8), t0 + 50_000_000L)).isZero();
            assertThat(System.nanoTime() - t0).isGreaterThanOrEqualTo(40_000_000L);
            b.close();
            b.close();
            assertThat(b.isOpen()).isFalse();
            assertThatThrownBy(b::number).isInstanceOf(IllegalStateException.class);
        }
    }
}
