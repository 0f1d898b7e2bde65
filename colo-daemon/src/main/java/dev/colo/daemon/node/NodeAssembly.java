package dev.colo.daemon.node;

import dev.colo.daemon.config.DaemonConfig;
import dev.colo.daemon.control.ControlApi;
import dev.colo.daemon.events.EventJournal;
import dev.colo.daemon.metrics.DaemonMetrics;
import dev.colo.hypervisor.Hypervisor;
import dev.colo.runtime.NodeIdentity;
import dev.colo.runtime.ThreadedRuntime;
import io.netty.channel.EventLoop;
import io.netty.channel.EventLoopGroup;
import io.netty.channel.MultiThreadIoEventLoopGroup;
import io.netty.channel.epoll.EpollIoHandler;
import java.util.List;
import java.util.concurrent.TimeUnit;

/**
 * A node on real threads, real sockets and a real tap: the daemon's wiring. The data path's lane
 * is a Netty event loop (its sockets live there) and the link has its own; all threads are named
 * after the node and carry its identity in their log lines.
 */
public final class NodeAssembly implements AutoCloseable {
    private final ThreadedRuntime runtime;
    private final EventLoopGroup pathGroup;
    private final EventLoopGroup linkGroup;
    private final EventLoopGroup diskGroup;
    private final Node node;
    private final ControlFacade control;

    public NodeAssembly(DaemonConfig cfg, Hypervisor hv, EventJournal events, DaemonMetrics metrics) {
        String role = cfg.node().role() == DaemonConfig.Role.PRIMARY ? "primary" : "secondary";
        runtime = new ThreadedRuntime(new NodeIdentity(cfg.node().name(), cfg.vm().domain(), role));
        pathGroup = new MultiThreadIoEventLoopGroup(1, runtime.threads("path"), EpollIoHandler.newFactory());
        linkGroup = new MultiThreadIoEventLoopGroup(1, runtime.threads("link"), EpollIoHandler.newFactory());
        // The PVM's disk writes wait for colo's NBD exports: they get a loop of their own.
        diskGroup = new MultiThreadIoEventLoopGroup(1, runtime.threads("disk"), EpollIoHandler.newFactory());
        EventLoop path = pathGroup.next();
        runtime.adopt("path", path, false);
        NodePorts ports = new NodePorts(runtime, hv, new TlsPeerLink(cfg, linkGroup), new HostNetwork(cfg, path),
                new HostReachability(cfg, runtime.lane("probe"), List.of(runtime.lane("probe-vm-1"), runtime.lane("probe-vm-2"))), new HostDisks(diskGroup), events, metrics);
        node = new Node(cfg, ports);
        control = new ControlFacade(node);
    }

    public void start() throws Exception {
        node.start();
    }

    public ControlApi control() {
        return control;
    }

    @Override
    public void close() {
        node.close();
        linkGroup.shutdownGracefully(0, 1, TimeUnit.SECONDS).syncUninterruptibly();
        diskGroup.shutdownGracefully(0, 1, TimeUnit.SECONDS).syncUninterruptibly();
        pathGroup.shutdownGracefully(0, 1, TimeUnit.SECONDS).syncUninterruptibly();
        runtime.close();
    }
}
