package dev.colo.daemon.host;

import static org.assertj.core.api.Assertions.assertThat;

import java.util.Random;
import org.junit.jupiter.api.Test;

class HostNetTest {
    @Test
    void aBridgePortAddressIsUnicastLocalAndNeverBelowAnotherPortsFirstOctet() {
        long seed = System.nanoTime();
        System.out.println("HostNetTest seed=" + seed);
        Random random = new Random(seed);
        for (int i = 0; i < 1000; i++) {
            String mac = HostNet.bridgePortMac(random);
            assertThat(mac).as("seed %d", seed).matches("fe(:[0-9a-f]{2}){5}");
            int first = Integer.parseInt(mac.substring(0, 2), 16);
            assertThat(first & 1).as("unicast").isZero();
            assertThat(first & 2).as("locally administered").isEqualTo(2);
        }
    }
}
