package dev.colo.daemon.sim;

import dev.colo.checkpoint.link.proto.Envelope;
import dev.colo.daemon.node.PeerLink;
import dev.colo.runtime.Lane;
import dev.colo.testkit.sim.SimWorld;
import java.util.ArrayDeque;
import java.util.function.Consumer;

/**
 * The replication link between two simulated nodes, with TCP's semantics: one session at a time,
 * FIFO within it, a latency plus a serialization time per message, and a high-water mark past which
 * the sender is told to wait. A silent partition stalls the session: messages wait (TCP retransmits)
 * and arrive in order when it heals. A cut (a reset, or a process that died) ends the session on
 * both sides, loses what was in flight, and the dialer reconnects with backoff.
 */
final class SimLink {
    static final long LATENCY_NS = 150_000L;
    static final long BYTES_PER_S = 250_000_000L;
    static final long HIGH_WATER_BYTES = 4L << 20;
    static final long RESET_NS = 1_000_000L;

    private final SimWorld world;
    private final End[] ends = new End[2];
    private boolean partitioned;
    /** The side whose messages wait (a one-way stall), or -1. */
    private int stalledSide = -1;
    private long sessionId;
    private boolean sessionUp;
    private long backoffNs = 100_000_000L;
    /** Messages waiting out a partition, per direction. */
    private final ArrayDeque<Runnable> stalled = new ArrayDeque<>();
    long messages;
    Consumer<Envelope> observer = e -> { };

    SimLink(SimWorld world) {
        this.world = world;
    }

    /** A node's end of the link (a new one for a restarted daemon). Side 0 dials. */
    End end(int side, String node, Lane delivery) {
        End e = new End(side, node, delivery);
        ends[side] = e;
        return e;
    }

    /** Partitioned, or one direction stalled: something waits for {@link #heal()}. */
    boolean partitioned() {
        return partitioned || stalledSide >= 0;
    }

    boolean up() {
        return sessionUp;
    }

    /** Silent partition: nothing arrives until {@link #heal()}; no side is told. */
    void partition() {
        partitioned = true;
    }

    /**
     * One direction stalls (TCP retransmitting into a black hole, a stalled sender): what
     * {@code side} sends waits until {@link #heal()}, while the other direction flows.
     */
    void stallFrom(int side) {
        stalledSide = side;
    }

    void heal() {
        partitioned = false;
        stalledSide = -1;
        while (!stalled.isEmpty()) {
            stalled.pollFirst().run();
        }
        maybeConnect();
    }

    /** A reset: both sides see the session end; what was in flight is lost. */
    void cut(String why) {
        if (sessionUp) {
            endSession(why);
        }
        maybeConnect();
    }

    /** The process owning {@code e} died: its sockets close, the kernel resets the session. */
    void died(End e) {
        e.alive = false;
        if (sessionUp) {
            endSession("connection reset by peer");
        }
    }

    private void endSession(String why) {
        sessionUp = false;
        sessionId++;
        stalled.clear();
        for (End e : ends) {
            if (e != null && e.alive && e.listener != null) {
                End x = e;
                x.inFlightBytes = 0;
                world.post(RESET_NS, () -> x.delivery.execute(() -> x.listener.onDown(why)), null);
            }
        }
    }

    private void maybeConnect() {
        End a = ends[0];
        End b = ends[1];
        if (sessionUp || partitioned || a == null || b == null || !a.alive || !b.alive || a.listener == null || b.listener == null) {
            return;
        }
        long id = ++sessionId;
        world.post(backoffNs, () -> {
            if (sessionId != id || sessionUp || partitioned || !a.alive || !b.alive) {
                if (!sessionUp && !partitioned) {
                    backoffNs = Math.min(5_000_000_000L, backoffNs * 2);
                    maybeConnect();
                }
                return;
            }
            sessionUp = true;
            backoffNs = 100_000_000L;
            a.lastDeliverNs = 0;
            b.lastDeliverNs = 0;
            a.delivery.execute(() -> a.listener.onUp(b.node));
            b.delivery.execute(() -> b.listener.onUp(a.node));
        }, null);
    }

    /** One node's end. */
    final class End implements PeerLink {
        final int side;
        final String node;
        final Lane delivery;
        boolean alive = true;
        Listener listener;
        long inFlightBytes;
        long lastDeliverNs;

        End(int side, String node, Lane delivery) {
            this.side = side;
            this.node = node;
            this.delivery = delivery;
        }

        End peer() {
            return ends[1 - side];
        }

        @Override
        public void start(Listener l) {
            this.listener = l;
            maybeConnect();
        }

        @Override
        public boolean send(Envelope m) {
            if (!sessionUp || !alive) {
                return false;
            }
            End to = peer();
            long id = sessionId;
            int size = m.getSerializedSize() + 4;
            inFlightBytes += size;
            messages++;
            observer.accept(m);
            if (SimTrace.on() && m.getBodyCase() == Envelope.BodyCase.FRAMES) {
                var fb = m.getFrames();
                for (int i = 0; i < fb.getFramesCount(); i++) {
                    SimTrace.frame("link " + node + " seg " + fb.getSegment() + (fb.getNextSvmOnly() ? "+" : "") + " gen "
                            + fb.getSvmGeneration(), dev.colo.proxy.frame.Frame.of(io.netty.buffer.Unpooled.wrappedBuffer(fb.getFrames(i).toByteArray())));
                }
            } else if (SimTrace.on() && m.getBodyCase() != Envelope.BodyCase.HEARTBEAT) {
                SimTrace.note("link " + node + " sends " + m.getBodyCase() + " " + (m.getBodyCase() == Envelope.BodyCase.PAGES ? "" : m.toString().replace("\n", " ").substring(0, Math.min(120, m.toString().length()))));
            }
            Runnable go = () -> {
                long at = Math.max(lastDeliverNs, world.nowNs() + LATENCY_NS + size * 1_000_000_000L / BYTES_PER_S);
                lastDeliverNs = at;
                world.post(at - world.nowNs(), () -> {
                    inFlightBytes -= size;
                    if (sessionId == id && sessionUp && to.alive && to.listener != null) {
                        to.delivery.execute(() -> {
                            if (sessionId == id) {
                                to.listener.onMessage(m);
                            }
                        });
                    }
                }, null);
            };
            if (partitioned || side == stalledSide) {
                stalled.addLast(go);
            } else {
                go.run();
            }
            return inFlightBytes < HIGH_WATER_BYTES;
        }

        @Override
        public boolean writable() {
            return !sessionUp || inFlightBytes < HIGH_WATER_BYTES;
        }

        @Override
        public boolean connected() {
            return sessionUp && alive;
        }

        @Override
        public void close() {
            died(this);
        }
    }
}
