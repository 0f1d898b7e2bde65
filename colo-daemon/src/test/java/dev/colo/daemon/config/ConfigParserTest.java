package dev.colo.daemon.config;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/** Good configs parse; every kind of mistake is named with its file, line, section and key. */
class ConfigParserTest {
    static Path pki;

    @BeforeAll
    static void certificates() throws Exception {
        pki = Files.createTempDirectory("colo-conf");
        for (String f : new String[] {"a.crt", "a.key", "ca.crt"}) {
            Files.writeString(pki.resolve(f), "x");
        }
    }

    static String valid() {
        return """
                # host A
                [node]
                name = host-a
                role = primary

                [peer]
                name = host-b
                link = 10.0.0.12:7450

                [link]
                listen = 10.0.0.11:7450
                certificate = %1$s/a.crt
                key = %1$s/a.key
                ca = %1$s/ca.crt

                [witness]
                address = 10.0.0.1

                [vm]
                domain = web1
                tap = colo-web1
                bridge = br0
                ip = 10.0.0.2
                """.formatted(pki);
    }

    @Test
    void aMinimalConfigGetsDocumentedDefaults() throws Exception {
        DaemonConfig c = ConfigParser.parse("colo.conf", valid());
        assertThat(c.node().role()).isEqualTo(DaemonConfig.Role.PRIMARY);
        assertThat(c.peer().link().getPort()).isEqualTo(7450);
        assertThat(c.link().heartbeatIntervalMs()).isEqualTo(100);
        assertThat(c.link().heartbeatTimeoutMs()).isEqualTo(500);
        assertThat(c.witness().timeoutMs()).isEqualTo(200);
        // 2 x 500 + 3 x 200 (the secondary's timeout) + 2 x 200 + 1000 (a probe) + 2 x 100 + 500
        assertThat(c.promotionLeaseMs()).isEqualTo(3_700);
        assertThat(c.summary()).contains("promotion_lease_ms=3700");
        assertThat(c.controlSocket()).hasToString("/run/colo/colo.sock");
        assertThat(c.metrics()).isPresent();
        assertThat(c.libvirt().uri()).isEqualTo("qemu:///system");
        assertThat(c.libvirt().accelerator()).isEmpty();
        assertThat(c.vm().proxyPort()).isEqualTo(7460);
        assertThat(c.vm().codec()).isEqualTo("lz4");
        assertThat(c.pair()).isEqualTo("web1");
        assertThat(c.disks().dir()).hasToString("/var/lib/colo/disks");
        assertThat(c.disks().nbdDir()).hasToString("/run/colo/nbd");
        assertThat(c.disks().logTriggerBytes()).isEqualTo(16L << 20);
        assertThat(c.disks().logLimitBytes()).isEqualTo(256L << 20);
        assertThat(c.summary()).contains("node=host-a").contains("peer=host-b@10.0.0.12:7450").doesNotContain("a.key")
                .contains("disk_dir=/var/lib/colo/disks");
    }

    @Test
    void theDisksSectionIsReadAndChecked() throws Exception {
        DaemonConfig c = ConfigParser.parse("colo.conf", valid() + "[disks]\ndir = /srv/colo\nnbd-dir = /run/x\nlog-trigger-mib = 8\nlog-limit-mib = 64\n");
        assertThat(c.disks().dir()).hasToString("/srv/colo");
        assertThat(c.disks().nbdDir()).hasToString("/run/x");
        assertThat(c.disks().logTriggerBytes()).isEqualTo(8L << 20);
        assertThat(c.disks().logLimitBytes()).isEqualTo(64L << 20);
        rejects(valid() + "[disks]\ndir = relative/dir\n", "[disks] dir", "absolute path");
        rejects(valid() + "[disks]\nlog-trigger-mib = 64\nlog-limit-mib = 8\n", "[disks] log-limit-mib", "at least log-trigger-mib");
        rejects(valid() + "[disks]\nsize = 3\n", "unknown key 'size' in [disks]");
    }

    static void rejects(String text, String... fragments) {
        assertThatThrownBy(() -> ConfigParser.parse("colo.conf", text)).isInstanceOf(ConfigException.class)
                .satisfies(e -> {
                    for (String f : fragments) {
                        assertThat(e.getMessage()).contains(f);
                    }
                });
    }

    @Test
    void mistakesNameTheLineAndKey() {
        rejects(valid().replace("role = primary", "role = primray"), "colo.conf:4:", "[node] role", "primary or secondary", "primray");
        rejects(valid().replace("tap = colo-web1", "tapp = colo-web1"), "colo.conf:21:", "unknown key 'tapp' in [vm]", "known: ");
        rejects(valid().replace("[witness]", "[witnes]"), "colo.conf:16:", "unknown section [witnes]");
        rejects(valid().replace("link = 10.0.0.12:7450", "link = 10.0.0.12"), "colo.conf:8:", "[peer] link", "HOST:PORT");
        rejects(valid().replace("link = 10.0.0.12:7450", "link = 10.0.0.12:99999"), "port must be 1-65535");
        rejects(valid().replace("link = 10.0.0.12:7450", "link = peer.example:7450"), "IPv4 address");
        rejects(valid().replace("ip = 10.0.0.2", "ip = 10.0.0.300"), "[vm] ip", "not an IPv4 address");
        rejects(valid().replace("name = host-b", "name = host-a"), "[peer] name", "must differ");
        rejects(valid().replace("address = 10.0.0.1\n", ""), "[witness] address: required but missing");
        rejects(valid().replace("ca = " + pki + "/ca.crt", "ca = " + pki + "/nope.crt"), "colo.conf:14:", "does not exist",
                "colo certs create");
        rejects(valid().replace("ca = " + pki, "ca = relative"), "must be an absolute path");
        rejects(valid() + "heartbeat-interval-ms = 5\n", "unknown key 'heartbeat-interval-ms' in [vm]");
        rejects(valid().replace("[witness]", "[witness]\ntimeout-ms = fast"), "[witness] timeout-ms", "whole number of milliseconds", "fast");
        rejects(valid().replace("listen = 10.0.0.11:7450", "listen = 10.0.0.11:7450\nheartbeat-interval-ms = 200\nheartbeat-timeout-ms = 300"),
                "at least 3 heartbeat intervals");
        rejects(valid().replace("[node]", "[node]\nname = again"), "set twice");
        rejects("name = x\n", "colo.conf:1:", "outside any [section]");
        rejects(valid() + "[vm]\n", "appears twice");
        rejects(valid() + "garbage line\n", "expected 'key = value'");
        rejects(valid().replace("domain = web1", "domain = web 1"), "[vm] domain", "libvirt domain name");
        rejects(valid().replace("[vm]", "[vm]\ncodec = gzip"), "raw, lz4 or zstd");
        rejects(valid().replace("bridge = br0", "bridge = a-bridge-name-too-long"), "[vm] bridge", "15 characters");
    }

    @Test
    void aMissingFileSaysSo() {
        assertThatThrownBy(() -> ConfigParser.load(pki.resolve("absent.conf"))).isInstanceOf(ConfigException.class)
                .hasMessageContaining("config file not found");
    }

    @Test
    void commentsAndMetricsOffAndAcceleratorAreUnderstood() throws Exception {
        DaemonConfig c = ConfigParser.parse("colo.conf", valid().replace("[witness]", "[metrics]\nlisten = off\n\n[libvirt]\naccelerator = tcg # lab\n\n[witness]"));
        assertThat(c.metrics()).isEmpty();
        assertThat(c.libvirt().accelerator()).contains("tcg");
        rejects(valid().replace("[witness]", "[libvirt]\naccelerator = hvf\n[witness]"), "kvm or tcg");
    }
}
