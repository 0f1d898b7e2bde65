package dev.colo.daemon.node;

import dev.colo.checkpoint.coordinator.CheckpointRecord;
import dev.colo.proxy.compare.CompareStats;
import java.util.ArrayDeque;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * The node's status as the control API shows it (schema in docs/operations.md), built in one
 * place: {@code colo status}, the pair and switchover results and the watchdog's status text all
 * use it. Also keeps the last checkpoint's figures and the recent checkpoint times. Control lane.
 */
final class NodeStatus {
    private final NodeContext ctx;
    private final ArrayDeque<Long> recentCheckpointsMs = new ArrayDeque<>();
    private CheckpointRecord last;
    private long lastAtMs;
    private long lastCommittedSeq;

    NodeStatus(NodeContext ctx) {
        this.ctx = ctx;
    }

    void record(CheckpointRecord r) {
        last = r;
        lastAtMs = ctx.runtime().clock().wallMillis();
        if (r.committed()) {
            lastCommittedSeq = r.seq();
        }
        recentCheckpointsMs.addLast(lastAtMs);
        while (recentCheckpointsMs.size() > 1000) {
            recentCheckpointsMs.removeFirst();
        }
    }

    long lastCommittedSeq() {
        return lastCommittedSeq;
    }

    Map<String, Object> build(PrimaryRole primary, SecondaryRole secondary) {
        var cfg = ctx.cfg();
        FailoverControl f = ctx.failover();
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("vm", cfg.vm().domain());
        m.put("node", cfg.node().name());
        m.put("role", f.actsAsPrimary() ? "primary" : "secondary");
        m.put("state", f.state().name());
        m.put("term", f.term());
        m.put("checkpoint", lastCommittedSeq);
        m.put("domain", primary != null ? (primary.pvm() == null ? cfg.vm().domain() : primary.pvm().name()) : secondary.currentSvm());
        Map<String, Object> peer = new LinkedHashMap<>();
        peer.put("node", cfg.peer().name());
        peer.put("address", cfg.peer().link().getHostString() + ":" + cfg.peer().link().getPort());
        peer.put("link", ctx.link().connected() ? "up" : "down");
        peer.put("last_heartbeat_ms_ago", (ctx.now() - f.lastHeartbeatNs()) / 1_000_000);
        m.put("peer", peer);
        if (last != null) {
            Map<String, Object> c = checkpoint(last);
            c.put("age_ms", ctx.runtime().clock().wallMillis() - lastAtMs);
            m.put("last_checkpoint", c);
        }
        long minuteAgo = ctx.runtime().clock().wallMillis() - 60_000;
        m.put("checkpoints_per_minute", recentCheckpointsMs.stream().filter(t -> t >= minuteAgo).count());
        if (primary != null) {
            try {
                CompareStats st = primary.pathStats();
                m.put("path", primary.pathMode().name());
                m.put("held_frames", st.heldNow());
                m.put("matched_frames", st.matchedFrames());
                m.put("checkpoint_requests", st.checkpointRequestsTotal());
            } catch (Exception e) {
                m.put("held_frames", -1);
            }
            m.put("frames_not_sent_to_peer", primary.droppedToPeer());
            PairingWorkflow.CopyStatus copy = primary.diskCopy();
            if (copy != null) {
                Map<String, Object> c = new LinkedHashMap<>();
                double seconds = Math.max(1e-3, (ctx.now() - copy.startedNs()) / 1e9);
                double rate = copy.progress().doneBytes() / seconds;
                c.put("done_bytes", copy.progress().doneBytes());
                c.put("total_bytes", copy.progress().totalBytes());
                c.put("rate_mib_s", Math.round(rate / (1 << 20) * 10) / 10.0);
                c.put("eta_s", rate > 0 ? Math.round((copy.progress().totalBytes() - copy.progress().doneBytes()) / rate) : -1);
                c.put("elapsed_s", Math.round(seconds * 10) / 10.0);
                m.put("disk_copy", c);
            }
            PvmDisks disks = primary.disks();
            if (disks != null) {
                java.util.List<Map<String, Object>> list = new java.util.ArrayList<>();
                for (PvmDisks.Disk d : disks.disks()) {
                    Map<String, Object> x = new LinkedHashMap<>();
                    x.put("target", d.target());
                    x.put("size_bytes", d.size());
                    x.put("mirror", d.relay().connected() ? d.relay().mode().name().toLowerCase() : "broken");
                    x.put("unacknowledged_bytes", d.relay().heldBytes());
                    x.put("copied_bytes", d.relay().copiedBytes());
                    list.add(x);
                }
                m.put("disks", list);
            }
        } else {
            try {
                m.put("path", secondary.pathState().name());
                m.put("buffered_ingress", secondary.buffered());
            } catch (Exception e) {
                m.put("buffered_ingress", -1);
            }
            SvmDisks disks = secondary.disks();
            if (disks != null) {
                java.util.List<Map<String, Object>> list = new java.util.ArrayList<>();
                for (var d : disks.copies().values()) {
                    Map<String, Object> x = new LinkedHashMap<>();
                    x.put("target", d.name());
                    x.put("size_bytes", d.size());
                    x.put("copy", d.path().toString());
                    x.put("written_bytes", d.bytesWritten());
                    list.add(x);
                }
                m.put("disks", list);
            }
        }
        return m;
    }

    /** One checkpoint's figures, as the status and the checkpoint verb show them. */
    static Map<String, Object> checkpoint(CheckpointRecord r) {
        Map<String, Object> c = new LinkedHashMap<>();
        c.put("seq", r.seq());
        c.put("trigger", r.trigger().name().toLowerCase());
        c.put("reason", r.reason());
        c.put("outcome", r.outcome());
        c.put("full", r.full());
        c.put("paused_ms", Math.round(r.pausedNs() / 1e5) / 10.0);
        c.put("dirty_pages", r.dirtyPages());
        c.put("raw_bytes", r.rawBytes());
        c.put("wire_bytes", r.wireBytes());
        c.put("device_state_bytes", r.deviceStateBytes());
        c.put("svm_ready_ms", Math.round(r.svmReadyNs() / 1e5) / 10.0);
        return c;
    }
}
