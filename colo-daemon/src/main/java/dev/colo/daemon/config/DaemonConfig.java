package dev.colo.daemon.config;

import java.net.InetSocketAddress;
import java.nio.file.Path;
import java.util.Optional;

/**
 * The daemon's validated configuration (see docs/operations.md for the file format). One daemon
 * protects one VM; run one instance per VM ({@code colo@VM.service}).
 */
public record DaemonConfig(
        Node node,
        Peer peer,
        Link link,
        Witness witness,
        Path controlSocket,
        Optional<InetSocketAddress> metrics,
        Libvirt libvirt,
        Vm vm,
        Disks disks) {

    public enum Role { PRIMARY, SECONDARY }

    public record Node(String name, Role role) {}

    public record Peer(String name, InetSocketAddress link) {}

    public record Link(InetSocketAddress listen, Path certificate, Path key, Path ca, long heartbeatIntervalMs, long heartbeatTimeoutMs) {}

    /** The third opinion: act only while {@code address} answers (Pacemaker's ping resource). */
    public record Witness(String address, long timeoutMs) {}

    /**
     * @param vmNetns network namespace QEMU runs in (its NIC socket connects there); empty means the
     *     daemon's own
     */
    public record Libvirt(String uri, Optional<String> accelerator, Optional<Path> vmNetns) {}

    /**
     * @param reuseSvm the secondary loads each checkpoint into the running SVM in place (QEMU's COLO
     *     secondary mode); false gives every checkpoint a fresh standby QEMU
     * @param compareHttpDate the comparator's http_date rule: responses equal but for a well-formed
     *     HTTP Date value match (docs/compare.md)
     */
    public record Vm(String domain, String tap, Optional<String> bridge, String ip, int proxyPort, long compareTimeoutMs,
            long maxIntervalMs, String codec, long reprotectBackoffMs, boolean pairOnStart, boolean reuseSvm, boolean compareHttpDate) {}

    /**
     * Disk replication.
     *
     * @param dir the secondary's copies of the PVM's disks and its SVMs' overlays ({@code DIR/VM/})
     * @param nbdDir the primary's NBD sockets, one per mirrored disk, which QEMU connects to
     * @param logTriggerBytes the PVM's disk writes since the last checkpoint past which a checkpoint starts
     * @param logLimitBytes ... past which the guest's writes wait for one
     */
    public record Disks(Path dir, Path nbdDir, long logTriggerBytes, long logLimitBytes) {
        public static Disks defaults() {
            return new Disks(Path.of("/var/lib/colo/disks"), Path.of("/run/colo/nbd"), 16L << 20, 256L << 20);
        }
    }

    /** The pair's name on the link and in logs: the protected domain's name. */
    public String pair() {
        return vm.domain();
    }

    /** How long the secondary waits for the primary before it probes: longer than the primary's timeout. */
    public long secondaryTimeoutMs() {
        return 2 * link.heartbeatTimeoutMs() + 3 * witness.timeoutMs();
    }

    /**
     * The secondary's promotion lease, derived from settings both nodes share: its timeout, one
     * whole probe (the witness, then the primary daemon's connect of at least a second), two
     * heartbeat intervals of echo lag and half a second of scheduling slack. A secondary that finds
     * the primary gone later than this after the primary last confirmed it does not promote; the
     * primary serves without a silent secondary only 500 ms after that.
     */
    public long promotionLeaseMs() {
        long w = witness.timeoutMs();
        return secondaryTimeoutMs() + 2 * w + Math.max(1000, 3 * w) + 2 * link.heartbeatIntervalMs() + 500;
    }

    /** One line for the start-up log: everything an operator may want to check, no secrets. */
    public String summary() {
        return "node=" + node.name() + " role=" + node.role().name().toLowerCase() + " peer=" + peer.name() + "@" + hostPort(peer.link())
                + " link_listen=" + hostPort(link.listen()) + " heartbeat_ms=" + link.heartbeatIntervalMs() + "/" + link.heartbeatTimeoutMs()
                + " witness=" + witness.address() + " witness_timeout_ms=" + witness.timeoutMs() + " promotion_lease_ms=" + promotionLeaseMs()
                + " control=" + controlSocket
                + " metrics=" + metrics.map(DaemonConfig::hostPort).orElse("off") + " libvirt=" + libvirt.uri()
                + " accelerator=" + libvirt.accelerator().orElse("as-defined") + " vm_netns=" + libvirt.vmNetns().map(Path::toString).orElse("own")
                + " vm=" + vm.domain() + " tap=" + vm.tap() + " bridge=" + vm.bridge().orElse("none") + " ip=" + vm.ip()
                + " proxy_port=" + vm.proxyPort() + " compare_timeout_ms=" + vm.compareTimeoutMs() + " max_interval_ms=" + vm.maxIntervalMs()
                + " codec=" + vm.codec() + " pair_on_start=" + vm.pairOnStart() + " reuse_svm=" + vm.reuseSvm()
                + " compare_http_date=" + vm.compareHttpDate() + " disk_dir=" + disks.dir() + " nbd_dir=" + disks.nbdDir()
                + " disk_log_trigger_mib=" + (disks.logTriggerBytes() >> 20) + " disk_log_limit_mib=" + (disks.logLimitBytes() >> 20);
    }

    static String hostPort(InetSocketAddress a) {
        return a.getHostString() + ":" + a.getPort();
    }
}
