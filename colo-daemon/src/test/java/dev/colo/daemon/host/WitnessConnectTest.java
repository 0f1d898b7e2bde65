package dev.colo.daemon.host;

import static org.assertj.core.api.Assertions.assertThat;

import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import org.junit.jupiter.api.Test;

/** The peer-daemon probe on loopback: a listener answers, a closed port refuses at once. */
class WitnessConnectTest {
    @Test
    void aListeningDaemonIsAnsweredAndAClosedPortRefusedAtOnce() throws Exception {
        InetSocketAddress where;
        try (ServerSocket s = new ServerSocket(0, 50, InetAddress.getLoopbackAddress())) {
            where = new InetSocketAddress(InetAddress.getLoopbackAddress(), s.getLocalPort());
            Witness.Answer a = Witness.connect(where, 1000);
            assertThat(a.answered()).as(a.evidence()).isTrue();
            assertThat(a.evidence()).contains("accepted");
        }
        long t0 = System.nanoTime();
        Witness.Answer closed = Witness.connect(where, 1000);
        assertThat(closed.answered()).isFalse();
        assertThat(closed.refused()).as(closed.evidence()).isTrue();
        assertThat((System.nanoTime() - t0) / 1_000_000).as("a refusal does not wait for the timeout").isLessThan(900);
    }
}
