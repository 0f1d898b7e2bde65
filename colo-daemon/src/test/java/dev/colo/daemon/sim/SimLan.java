package dev.colo.daemon.sim;

import dev.colo.proxy.frame.Frame;
import dev.colo.testkit.sim.SimWorld;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.Unpooled;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.function.Consumer;

/**
 * The client LAN: a learning switch. A frame from a port teaches the switch where its source MAC
 * lives; it goes to the port its destination was learned on, or to every other port when unknown
 * or broadcast. Like a real LAN it may lose, duplicate, delay and reorder frames (per the seeded
 * fault settings), never on the replication link, which is TCP.
 */
final class SimLan {
    /** One port: a node's tap, a client, a probe station. */
    final class Port {
        final String name;
        final Consumer<Frame> deliver;
        boolean up = true;

        Port(String name, Consumer<Frame> deliver) {
            this.name = name;
            this.deliver = deliver;
        }

        /** A frame entering the switch from this port (ownership passes). */
        void send(Frame f) {
            SimLan.this.forward(this, f);
        }
    }

    private final SimWorld world;
    private final Random rnd;
    private final List<Port> ports = new ArrayList<>();
    private final Map<Long, Port> learned = new HashMap<>();
    /** Per-frame probabilities, in parts per 10,000. */
    int lossPer10k;
    int duplicatePer10k;
    int reorderPer10k;
    long framesForwarded;
    long framesLost;

    SimLan(SimWorld world) {
        this.world = world;
        this.rnd = world.random();
    }

    Port attach(String name, Consumer<Frame> deliver) {
        Port p = new Port(name, deliver);
        ports.add(p);
        return p;
    }

    void detach(Port p) {
        p.up = false;
        ports.remove(p);
        learned.values().removeIf(x -> x == p);
    }

    private void forward(Port from, Frame f) {
        if (!from.up) {
            f.release();
            return;
        }
        ByteBuf eth = f.ethernet();
        long src = SimPackets.macKey(SimPackets.srcMac(eth));
        long dst = SimPackets.macKey(SimPackets.dstMac(eth));
        learned.put(src, from);
        Port to = learned.get(dst);
        byte[] bytes = new byte[eth.readableBytes()];
        eth.getBytes(eth.readerIndex(), bytes);
        f.release();
        if (to != null && to != from) {
            transmit(to, bytes);
        } else if (to == null) {
            for (Port p : List.copyOf(ports)) {
                if (p != from) {
                    transmit(p, bytes);
                }
            }
        }
    }

    private void transmit(Port to, byte[] bytes) {
        framesForwarded++;
        if (lossPer10k > 0 && rnd.nextInt(10_000) < lossPer10k) {
            framesLost++;
            return;
        }
        long delay = 30_000 + rnd.nextInt(40_000);
        if (reorderPer10k > 0 && rnd.nextInt(10_000) < reorderPer10k) {
            delay += rnd.nextInt(3_000_000);
        }
        deliverLater(to, bytes, delay);
        // Duplicates only TCP: a LAN duplicates next to never, and a UDP service would rightly apply
        // a duplicate twice; TCP must cope with them.
        boolean tcp = bytes.length > 23 && bytes[12] == 0x08 && bytes[13] == 0 && bytes[23] == 6;
        if (tcp && duplicatePer10k > 0 && rnd.nextInt(10_000) < duplicatePer10k) {
            deliverLater(to, bytes, delay + rnd.nextInt(1_000_000));
        }
    }

    private void deliverLater(Port to, byte[] bytes, long delayNs) {
        world.post(delayNs, () -> {
            if (to.up) {
                to.deliver.accept(Frame.of(Unpooled.wrappedBuffer(bytes.clone())));
            }
        }, null);
    }
}
