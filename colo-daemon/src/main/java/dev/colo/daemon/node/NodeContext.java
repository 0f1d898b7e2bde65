package dev.colo.daemon.node;

import dev.colo.checkpoint.coordinator.CheckpointRecord;
import dev.colo.daemon.config.DaemonConfig;
import dev.colo.daemon.events.EventJournal;
import dev.colo.daemon.metrics.DaemonMetrics;
import dev.colo.hypervisor.Hypervisor;
import dev.colo.runtime.Lane;
import dev.colo.runtime.NodeRuntime;
import java.util.Map;
import java.util.function.Consumer;
import java.util.function.Supplier;

/** What every part of one node shares: its config, ports, lanes and the failover control. Built by {@link Node}. */
final class NodeContext {
    private final DaemonConfig cfg;
    private final NodePorts ports;
    private final Lane control;
    private final Lane path;
    private final Lane work;
    private FailoverControl failover;
    private Envelopes envelopes;
    private Network.Lan lan;
    private Supplier<Map<String, Object>> status;
    private Consumer<CheckpointRecord> records;

    NodeContext(DaemonConfig cfg, NodePorts ports) {
        this.cfg = cfg;
        this.ports = ports;
        this.control = ports.runtime().lane("control");
        this.path = ports.runtime().lane("path");
        this.work = ports.runtime().lane("work");
    }

    void wire(FailoverControl f, Envelopes e, Supplier<Map<String, Object>> statusView, Consumer<CheckpointRecord> recorder) {
        this.failover = f;
        this.envelopes = e;
        this.status = statusView;
        this.records = recorder;
    }

    void lan(Network.Lan l) {
        this.lan = l;
    }

    DaemonConfig cfg() {
        return cfg;
    }

    NodeRuntime runtime() {
        return ports.runtime();
    }

    long now() {
        return ports.runtime().nowNs();
    }

    Hypervisor hv() {
        return ports.hypervisor();
    }

    PeerLink link() {
        return ports.link();
    }

    Network network() {
        return ports.network();
    }

    DiskHost disks() {
        return ports.disks();
    }

    Network.Lan lan() {
        return lan;
    }

    EventJournal events() {
        return ports.events();
    }

    DaemonMetrics metrics() {
        return ports.metrics();
    }

    Lane control() {
        return control;
    }

    Lane path() {
        return path;
    }

    Lane work() {
        return work;
    }

    FailoverControl failover() {
        return failover;
    }

    Envelopes envelopes() {
        return envelopes;
    }

    /** The status view, on the control lane. */
    Map<String, Object> status() {
        return status.get();
    }

    void recordCheckpoint(CheckpointRecord r) {
        records.accept(r);
    }
}
