package dev.colo.daemon.node;

import dev.colo.daemon.config.DaemonConfig;
import dev.colo.daemon.host.HostNet;
import dev.colo.daemon.net.TapPump;
import dev.colo.host.posix.NetNamespace;
import dev.colo.host.tap.TapDevice;
import dev.colo.proxy.frame.Frame;
import dev.colo.proxy.netty.SocketQueues;
import dev.colo.proxy.netty.VmSocketServer;
import dev.colo.proxy.path.FrameSink;
import io.netty.channel.ChannelFactory;
import io.netty.channel.EventLoop;
import io.netty.channel.ServerChannel;
import io.netty.channel.epoll.EpollServerSocketChannel;
import java.net.InetSocketAddress;

/**
 * The production network: the VM's LAN side is a tap the daemon opens (and joins to the host
 * bridge), read by a {@link TapPump}; each VM NIC is a {@link VmSocketServer} on loopback in the
 * namespace QEMU runs in. Both feed the path event loop.
 */
public final class HostNetwork implements Network {
    private static final long DRAIN_POLL_NS = 200_000L;

    private final DaemonConfig cfg;
    private final EventLoop path;

    public HostNetwork(DaemonConfig cfg, EventLoop path) {
        this.cfg = cfg;
        this.path = path;
    }

    @Override
    public Lan openLan(FrameSink fromLan) throws Exception {
        TapDevice tap = TapDevice.open(cfg.vm().tap());
        if (cfg.vm().bridge().isPresent()) {
            HostNet.attach(tap.name(), cfg.vm().bridge().get());
        } else {
            HostNet.up(tap.name());
        }
        TapPump pump = new TapPump(tap, path, fromLan);
        return new Lan() {
            @Override
            public void send(Frame frame) {
                pump.send(frame);
            }

            @Override
            public String name() {
                return tap.name();
            }

            @Override
            public void close() {
                pump.close();
            }
        };
    }

    @Override
    public VmNic openVmNic(String owner, int port, FrameSink fromVm) throws Exception {
        VmSocketServer server = new VmSocketServer(owner, path, new InetSocketAddress("127.0.0.1", port), fromVm, vmNamespaceChannels());
        server.watchQueues(inVmNamespace(SocketQueues::open));
        return new VmNic() {
            @Override
            public int port() {
                return server.port();
            }

            @Override
            public void send(Frame frame) {
                server.send(frame);
            }

            @Override
            public boolean connected() {
                return server.connected();
            }

            @Override
            public int unreadFrames() {
                return server.unreadFrames();
            }

            @Override
            public void drain(long maxNs) {
                long deadline = System.nanoTime() + maxNs;
                while (server.unreadBytes() > 0 && System.nanoTime() < deadline) {
                    java.util.concurrent.locks.LockSupport.parkNanos(DRAIN_POLL_NS);
                }
            }

            @Override
            public void close() {
                server.close();
            }
        };
    }

    private <T> T inVmNamespace(java.util.concurrent.Callable<T> c) throws Exception {
        if (cfg.libvirt().vmNetns().isEmpty()) {
            return c.call();
        }
        return NetNamespace.callIn(cfg.libvirt().vmNetns().get().toString(), c);
    }

    /** The daemon's NIC sockets must be where QEMU runs, which may be another network namespace. */
    private ChannelFactory<? extends ServerChannel> vmNamespaceChannels() {
        if (cfg.libvirt().vmNetns().isEmpty()) {
            return EpollServerSocketChannel::new;
        }
        String ns = cfg.libvirt().vmNetns().get().toString();
        return () -> {
            try {
                return NetNamespace.callIn(ns, EpollServerSocketChannel::new);
            } catch (Exception e) {
                throw new IllegalStateException("cannot open a socket in network namespace " + ns + ": " + e.getMessage(), e);
            }
        };
    }
}
