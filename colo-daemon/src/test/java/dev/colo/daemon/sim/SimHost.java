package dev.colo.daemon.sim;

import dev.colo.daemon.node.Network;
import dev.colo.daemon.node.VmNic;
import dev.colo.hypervisor.DomainRef;
import dev.colo.hypervisor.HypervisorException;
import dev.colo.proxy.frame.Frame;
import dev.colo.proxy.path.FrameSink;
import dev.colo.runtime.Lane;
import dev.colo.testkit.SimulatedHypervisor;
import dev.colo.testkit.sim.SimWorld;
import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * One simulated host: its hypervisor (with the guest model running inside each domain), the NIC
 * sockets its daemon listens on (a domain's NIC connects to the port its XML names, as QEMU's
 * {@code -netdev socket,connect=} does, and never reconnects), and its port on the LAN.
 */
final class SimHost {
    private static final Pattern NIC_PORT = Pattern.compile("<source address=[\"']127\\.0\\.0\\.1[\"'] port=[\"'](\\d+)[\"']");

    final String name;
    final SimWorld world;
    final SimulatedHypervisor hv = new SimulatedHypervisor();
    /** This host's disk files (the secondary's copies of the PVM's disks). */
    final SimDisks disks = new SimDisks();
    final SimLan lan;
    final byte[] vmMac;
    final int vmIp;
    private final Map<Integer, Listening> listening = new HashMap<>();
    private final Map<String, Attached> attached = new HashMap<>();
    private int nextPort = 41_000;

    /** A NIC socket the daemon listens on. */
    private final class Listening implements VmNic {
        final int port;
        final String owner;
        final Lane path;
        final FrameSink fromVm;
        Attached vm;
        boolean open = true;

        Listening(int port, String owner, Lane path, FrameSink fromVm) {
            this.port = port;
            this.owner = owner;
            this.path = path;
            this.fromVm = fromVm;
        }

        @Override
        public int port() {
            return port;
        }

        @Override
        public void send(Frame frame) {
            Attached a = vm;
            if (!open || a == null || !a.connected) {
                frame.release();
                return;
            }
            SimTrace.frame("into " + a.domain.name(), frame);
            if (a.guest == null) {
                a.socket.addLast(frame); // a standby that has not run yet: the frame waits in its socket
            } else {
                a.guest.onNicFrame(frame);
            }
        }

        @Override
        public boolean connected() {
            return open && vm != null && vm.connected;
        }

        @Override
        public int unreadFrames() {
            Attached a = vm;
            return a == null ? 0 : a.guest == null ? a.socket.size() : a.guest.unread();
        }

        @Override
        public void close() {
            open = false;
            listening.remove(port, this);
            if (vm != null) {
                vm.connected = false; // QEMU's socket netdev does not reconnect
            }
        }
    }

    /** A running domain with its NIC connection and guest. */
    private static final class Attached {
        final DomainRef domain;
        final Listening nic;
        SimGuest guest;
        boolean connected = true;
        /** Frames written before the guest first ran. */
        final java.util.ArrayDeque<Frame> socket = new java.util.ArrayDeque<>();

        Attached(DomainRef domain, Listening nic) {
            this.domain = domain;
            this.nic = nic;
        }
    }

    SimHost(String name, SimWorld world, SimLan lan, byte[] vmMac, int vmIp, Map<String, Long> costs) {
        this.name = name;
        this.world = world;
        this.lan = lan;
        this.vmMac = vmMac;
        this.vmIp = vmIp;
        hv.setCosts(world::charge, costs);
        hv.setDiskFiles(path -> {
            SimDisks.File f = disks.files.get(java.nio.file.Path.of(path));
            return f == null ? null : f.bytes;
        });
        hv.setGuestHooks(new SimulatedHypervisor.GuestHooks() {
            @Override
            public void started(DomainRef d, String xml, boolean paused) {
                Matcher m = NIC_PORT.matcher(xml);
                Listening l = m.find() ? listening.get(Integer.parseInt(m.group(1))) : null;
                if (l == null) {
                    throw new HypervisorException(HypervisorException.Kind.FAILED, "QEMU: -netdev socket: connection refused ("
                            + (m.find(0) ? "port " + m.group(1) : "no socket NIC") + ")");
                }
                Attached a = new Attached(d, l);
                l.vm = a;
                attached.put(d.name(), a);
                if (!paused) {
                    a.guest = newGuest(d, a);
                    a.guest.run();
                }
            }

            @Override
            public void pausing(DomainRef d) {
                Attached a = attached.get(d.name());
                if (a != null && a.guest != null) {
                    a.guest.pause();
                    byte[] image = a.guest.image();
                    byte[] withLength = ByteBuffer.allocate(4 + image.length).putInt(image.length).put(image).array();
                    hv.guestWrite(d.name(), 0, withLength);
                }
            }

            @Override
            public void resumed(DomainRef d, boolean loadedFromState) {
                Attached a = attached.get(d.name());
                if (a == null) {
                    return;
                }
                if (a.guest == null) {
                    a.guest = newGuest(d, a);
                    int len = ByteBuffer.wrap(hv.guestRead(d.name(), 0, 4)).getInt();
                    a.guest.restore(hv.guestRead(d.name(), 4, len));
                    while (!a.socket.isEmpty()) {
                        a.guest.onNicFrame(a.socket.pollFirst());
                    }
                }
                a.guest.run();
            }

            @Override
            public void reloaded(DomainRef d) {
                Attached a = attached.get(d.name());
                if (a == null) {
                    return;
                }
                java.util.List<Frame> unread = java.util.List.of();
                if (a.guest != null) {
                    unread = a.guest.takeUnread();
                    a.guest.kill();
                }
                // The same QEMU process: a new guest from what the RAM holds; the socket keeps its bytes.
                a.guest = newGuest(d, a);
                int len = ByteBuffer.wrap(hv.guestRead(d.name(), 0, 4)).getInt();
                a.guest.restore(hv.guestRead(d.name(), 4, len));
                unread.forEach(a.guest::onNicFrame);
                a.guest.run();
            }

            @Override
            public void stopped(DomainRef d) {
                Attached a = attached.remove(d.name());
                if (a != null) {
                    if (a.guest != null) {
                        a.guest.kill();
                    }
                    a.socket.forEach(Frame::release);
                    a.socket.clear();
                    a.connected = false;
                    if (a.nic.vm == a) {
                        a.nic.vm = null;
                    }
                }
            }
        });
    }

    private SimGuest newGuest(DomainRef d, Attached a) {
        long seed = world.random().nextLong();
        return new SimGuest(world, d.name(), vmMac, vmIp, seed, f -> {
            Listening l = a.nic;
            if (!a.connected || !l.open) {
                f.release();
                return;
            }
            SimTrace.frame("out of " + d.name(), f);
            l.path.execute(() -> l.fromVm.accept(f));
        }, (offset, data) -> {
            if (hv.hasDisk(d.name(), SimGuest.DATA_DISK)) {
                hv.guestDiskWrite(d.name(), SimGuest.DATA_DISK, offset, data.length, data);
            }
        });
    }

    /** The guest running in {@code domain}, or null. */
    SimGuest guest(String domain) {
        Attached a = attached.get(domain);
        return a == null ? null : a.guest;
    }

    List<String> runningDomains() {
        return new ArrayList<>(attached.keySet());
    }

    /** The network a daemon on this host sees; {@code path} is its path lane. */
    final class NodeNetwork implements Network {
        private final String node;
        private final Lane path;
        private final List<Listening> nics = new ArrayList<>();
        private SimLan.Port port;
        /** The node's term, for the split-brain check: read at each release onto the LAN. */
        private final ReleaseLog releases;
        private final java.util.function.LongSupplier term;

        NodeNetwork(String node, Lane path, ReleaseLog releases, java.util.function.LongSupplier term) {
            this.node = node;
            this.path = path;
            this.releases = releases;
            this.term = term;
        }

        @Override
        public Lan openLan(FrameSink fromLan) {
            port = lan.attach("tap of " + node, f -> {
                SimTrace.frame("LAN to " + node, f);
                path.execute(() -> fromLan.accept(f));
            });
            SimLan.Port p = port;
            return new Lan() {
                @Override
                public void send(Frame frame) {
                    SimTrace.frame("released by " + node, frame);
                    releases.onRelease(node, term.getAsLong(), frame, world.nowNs());
                    p.send(frame);
                }

                @Override
                public String name() {
                    return "tap-" + node;
                }

                @Override
                public void close() {
                    lan.detach(p);
                }
            };
        }

        @Override
        public VmNic openVmNic(String owner, int p, FrameSink fromVm) {
            int chosen = p == 0 ? nextPort++ : p;
            if (listening.containsKey(chosen)) {
                throw new IllegalStateException("address already in use: 127.0.0.1:" + chosen);
            }
            Listening l = new Listening(chosen, owner, path, fromVm);
            listening.put(chosen, l);
            nics.add(l);
            return l;
        }

        /** The daemon died: its sockets close (VMs keep running, disconnected) and its tap goes. */
        void die() {
            for (Listening l : nics) {
                l.close();
            }
            nics.clear();
            if (port != null) {
                lan.detach(port);
            }
        }
    }
}
