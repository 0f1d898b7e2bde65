package dev.colo.daemon.metrics;

import io.prometheus.metrics.core.metrics.Counter;
import io.prometheus.metrics.core.metrics.Gauge;
import io.prometheus.metrics.core.metrics.Histogram;
import io.prometheus.metrics.exporter.httpserver.HTTPServer;
import io.prometheus.metrics.model.registry.PrometheusRegistry;
import java.io.IOException;
import java.net.InetSocketAddress;

/**
 * The daemon's Prometheus metrics (prometheus-metrics library), served on {@code /metrics}. Each
 * daemon has its own registry, so tests can run two in one JVM.
 */
public final class DaemonMetrics implements AutoCloseable {
    private final PrometheusRegistry registry = new PrometheusRegistry();
    private final String vm;
    public final Histogram pausedSeconds;
    public final Counter checkpoints;
    public final Counter dirtyPages;
    public final Counter bytesShipped;
    public final Counter failovers;
    public final Counter normalized;
    public final Counter divergences;
    public final Gauge term;
    public final Gauge checkpointSeq;
    public final Gauge heldFrames;
    public final Gauge state;
    public final Gauge linkUp;
    private HTTPServer server;

    public DaemonMetrics(String vm) {
        this.vm = vm;
        pausedSeconds = Histogram.builder().name("colo_checkpoint_paused_seconds").help("PVM paused time per checkpoint (stop to cont)")
                .classicUpperBounds(0.005, 0.01, 0.02, 0.03, 0.05, 0.1, 0.2, 0.5, 1, 2).labelNames("vm").register(registry);
        checkpoints = Counter.builder().name("colo_checkpoints_total").help("Checkpoints by trigger and outcome")
                .labelNames("vm", "trigger", "outcome").register(registry);
        dirtyPages = Counter.builder().name("colo_checkpoint_dirty_pages_total").help("Dirty pages shipped").labelNames("vm").register(registry);
        bytesShipped = Counter.builder().name("colo_checkpoint_wire_bytes_total").help("Checkpoint bytes on the wire").labelNames("vm")
                .register(registry);
        failovers = Counter.builder().name("colo_failovers_total").help("Takeovers by this node, by cause").labelNames("vm", "cause")
                .register(registry);
        divergences = Counter.builder().name("colo_checkpoint_requests_total").help("Checkpoint requests from the comparator, by reason")
                .labelNames("vm", "reason").register(registry);
        term = Gauge.builder().name("colo_term").help("Failover term of this node (bumped by each promotion)").labelNames("vm")
                .register(registry);
        checkpointSeq = Gauge.builder().name("colo_checkpoint_seq").help("Last committed checkpoint (the running SVM's generation)")
                .labelNames("vm").register(registry);
        normalized = Counter.builder().name("colo_compare_normalized_total")
                .help("Checkpoints a comparator rule avoided: outputs equal but for what the rule allows").labelNames("vm", "rule")
                .register(registry);
        heldFrames = Gauge.builder().name("colo_compare_held_frames").help("PVM frames held for comparison").labelNames("vm").register(registry);
        state = Gauge.builder().name("colo_state").help("1 for the failover state this node is in").labelNames("vm", "state").register(registry);
        linkUp = Gauge.builder().name("colo_link_up").help("1 while the replication link is connected").labelNames("vm").register(registry);
    }

    public String vm() {
        return vm;
    }

    public void start(InetSocketAddress listen) throws IOException {
        server = HTTPServer.builder().inetAddress(listen.getAddress()).port(listen.getPort()).registry(registry).buildAndStart();
    }

    public int port() {
        return server == null ? -1 : server.getPort();
    }

    public PrometheusRegistry registry() {
        return registry;
    }

    @Override
    public void close() {
        if (server != null) {
            server.close();
        }
    }
}
