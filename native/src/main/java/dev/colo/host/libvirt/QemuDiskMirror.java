package dev.colo.host.libvirt;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.JsonNodeFactory;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.colo.hypervisor.DiskMirror;
import dev.colo.hypervisor.DomainRef;
import dev.colo.hypervisor.Hypervisor;
import dev.colo.hypervisor.HypervisorException;
import dev.colo.hypervisor.HypervisorException.Kind;
import dev.colo.hypervisor.MirrorTarget;
import dev.colo.hypervisor.QmpException;
import java.time.Duration;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * QEMU's own block layer mirroring one disk into colo's NBD export, all by QMP beside libvirt:
 * an NBD client node ({@code colo-nbd-TARGET}) at colo's Unix socket, then {@code blockdev-mirror}
 * ({@code colo-mirror-TARGET}) from the disk's root node with {@code sync=full} and
 * {@code copy-mode=write-blocking}: QEMU copies the disk in the background and, from the start, a
 * guest write completes only after colo's export took it. A target failure never fails the guest's
 * write (QEMU 7.2 mirror.c): the job stops with an error, which {@link #progress} reports.
 */
final class QemuDiskMirror implements DiskMirror {
    private static final Logger log = LoggerFactory.getLogger(QemuDiskMirror.class);

    private final Hypervisor hv;
    private final DomainRef domain;
    private final String target;
    private final String job;
    private final String nbdNode;
    private boolean closed;

    private QemuDiskMirror(Hypervisor hv, DomainRef domain, String target) {
        this.hv = hv;
        this.domain = domain;
        this.target = target;
        this.job = "colo-mirror-" + target;
        this.nbdNode = "colo-nbd-" + target;
    }

    /** The disk's root node (what the device writes through) and its virtual size, from query-block. */
    record Disk(String node, long size) {}

    static Disk find(Hypervisor hv, DomainRef domain, String target, Duration timeout) {
        String alias = DomainXml.parse(hv.describe(domain, false)).diskAlias(target).orElseThrow(() -> new HypervisorException(
                Kind.UNSUPPORTED_DOMAIN, "domain " + domain.name() + " has no disk '" + target + "' (or libvirt gave it no alias)"));
        for (JsonNode b : hv.qmp(domain, "query-block", null, timeout)) {
            String qdev = b.path("qdev").asText("");
            if (qdev.equals(alias) || qdev.contains("/" + alias + "/") || qdev.endsWith("/" + alias)) {
                JsonNode inserted = b.path("inserted");
                if (inserted.isMissingNode()) {
                    throw new HypervisorException(Kind.UNSUPPORTED_DOMAIN, "disk " + target + " of " + domain.name() + " has no medium");
                }
                return new Disk(inserted.path("node-name").asText(), inserted.path("image").path("virtual-size").asLong());
            }
        }
        throw new HypervisorException(Kind.UNSUPPORTED_DOMAIN, "QEMU of " + domain.name() + " shows no block device for disk " + target
                + " (alias " + alias + ")");
    }

    static QemuDiskMirror start(Hypervisor hv, DomainRef domain, String target, MirrorTarget to, Duration timeout) {
        Disk disk = find(hv, domain, target, timeout);
        QemuDiskMirror m = new QemuDiskMirror(hv, domain, target);
        m.removeLeftovers(timeout);
        ObjectNode server = JsonNodeFactory.instance.objectNode().put("type", "unix").put("path", to.nbdSocket().toString());
        ObjectNode nbd = JsonNodeFactory.instance.objectNode().put("driver", "nbd").put("node-name", m.nbdNode).put("export", target);
        nbd.set("server", server);
        hv.qmp(domain, "blockdev-add", nbd, timeout);
        ObjectNode mirror = JsonNodeFactory.instance.objectNode().put("job-id", m.job).put("device", disk.node()).put("target", m.nbdNode)
                .put("sync", "full").put("copy-mode", "write-blocking").put("on-target-error", "report").put("auto-dismiss", false);
        try {
            hv.qmp(domain, "blockdev-mirror", mirror, timeout);
        } catch (RuntimeException e) {
            m.deleteNode(timeout);
            throw e;
        }
        log.atInfo().addKeyValue("vm", domain.name()).addKeyValue("disk", target).addKeyValue("node", disk.node())
                .addKeyValue("size_bytes", disk.size()).addKeyValue("socket", to.nbdSocket()).log("disk mirror started");
        return m;
    }

    @Override
    public String target() {
        return target;
    }

    @Override
    public Progress progress(Duration timeout) {
        for (JsonNode j : hv.qmp(domain, "query-block-jobs", null, timeout)) {
            if (job.equals(j.path("device").asText())) {
                String status = j.path("status").asText("");
                String error = j.hasNonNull("error") ? j.get("error").asText()
                        : status.equals("concluded") || status.equals("null") || status.equals("aborting") ? "mirror job " + status : null;
                return new Progress(j.path("offset").asLong(), j.path("len").asLong(), j.path("ready").asBoolean(), error);
            }
        }
        return new Progress(0, 0, false, "mirror job " + job + " is gone");
    }

    /** A mirror left by an earlier daemon (it died mid-pairing) is stopped first: the job id and node name are ours. */
    private void removeLeftovers(Duration timeout) {
        for (JsonNode j : hv.qmp(domain, "query-block-jobs", null, timeout)) {
            if (job.equals(j.path("device").asText())) {
                log.atWarn().addKeyValue("vm", domain.name()).addKeyValue("disk", target).log("stopping a disk mirror left by an earlier run");
                stopJob(timeout);
            }
        }
        deleteNode(timeout);
    }

    @Override
    public void close() {
        if (closed) {
            return;
        }
        closed = true;
        Duration t = Duration.ofSeconds(5);
        try {
            stopJob(t);
            deleteNode(t);
            log.atInfo().addKeyValue("vm", domain.name()).addKeyValue("disk", target).log("disk mirror stopped");
        } catch (RuntimeException e) {
            log.atWarn().addKeyValue("vm", domain.name()).addKeyValue("disk", target).addKeyValue("reason", e.getMessage())
                    .log("disk mirror did not stop cleanly");
        }
    }

    private void stopJob(Duration timeout) {
        try {
            hv.qmp(domain, "block-job-cancel", JsonNodeFactory.instance.objectNode().put("device", job).put("force", true), timeout);
        } catch (QmpException e) {
            // Already concluded (it failed, or an earlier cancel finished): dismissing is what is left.
        }
        long deadline = System.nanoTime() + timeout.toNanos();
        while (System.nanoTime() < deadline) {
            String status = null;
            for (JsonNode j : hv.qmp(domain, "query-block-jobs", null, timeout)) {
                if (job.equals(j.path("device").asText())) {
                    status = j.path("status").asText();
                }
            }
            if (status == null) {
                return;
            }
            if (status.equals("concluded")) {
                hv.qmp(domain, "block-job-dismiss", JsonNodeFactory.instance.objectNode().put("id", job), timeout);
                return;
            }
            try {
                Thread.sleep(10);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                return;
            }
        }
        throw new HypervisorException(Kind.TIMEOUT, "mirror job " + job + " on " + domain.name() + " did not end within " + timeout.toMillis()
                + " ms");
    }

    private void deleteNode(Duration timeout) {
        try {
            hv.qmp(domain, "blockdev-del", JsonNodeFactory.instance.objectNode().put("node-name", nbdNode), timeout);
        } catch (QmpException e) {
            // Not there: nothing to remove.
        }
    }
}
