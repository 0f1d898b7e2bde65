package dev.colo.proxy.bench;

import static dev.colo.proxy.packet.PacketView.TCP_ACK;
import static dev.colo.proxy.packet.PacketView.TCP_SYN;

import dev.colo.proxy.compare.CheckpointRequest;
import dev.colo.proxy.compare.CompareConfig;
import dev.colo.proxy.compare.CompareSink;
import dev.colo.proxy.compare.Comparator;
import dev.colo.proxy.frame.Frame;
import io.netty.buffer.Unpooled;

/**
 * Heap per tracked TCP connection: N connections that completed a handshake and matched one
 * segment, nothing held. Frames are released as they leave, so only the comparator's own state
 * remains. Usage: CompareMemoryBench [N=20000]
 */
public final class CompareMemoryBench {
    public static void main(String[] args) throws Exception {
        int n = args.length > 0 ? Integer.parseInt(args[0]) : 20_000;
        CompareSink sink = new CompareSink() {
            @Override
            public void release(Frame primary) {
                primary.release();
            }

            @Override
            public void checkpoint(CheckpointRequest request) {
                throw new IllegalStateException("unexpected checkpoint: " + request);
            }
        };
        Comparator cmp = new Comparator(CompareConfig.defaults().withMaxFlows(4 * n), sink);
        long before = usedHeap();
        byte[] body = new byte[100];
        for (int i = 0; i < n; i++) {
            int port = 1024 + i % 60000;
            int vm = 0x0ac90002 + (i / 60000);
            cmp.onPrimary(frame(vm, port, 1000, TCP_SYN | TCP_ACK, new byte[0]), 0);
            cmp.onSecondary(frame(vm, port, 5000, TCP_SYN | TCP_ACK, new byte[0]), 0);
            cmp.onPrimary(frame(vm, port, 1001, TCP_ACK, body), 0);
            cmp.onSecondary(frame(vm, port, 5001, TCP_ACK, body), 0);
        }
        long after = usedHeap();
        System.out.printf("comparator memory: %d TCP connections tracked, %d held frames, %.0f bytes of heap per connection%n",
                cmp.stats().flowsNow(), cmp.stats().heldNow(), (after - before) / (double) n);
        cmp.close();
    }

    static Frame frame(int vmIp, int port, long seq, int flags, byte[] payload) {
        return Frame.of(Unpooled.wrappedBuffer(CompareBench.bytes(dev.colo.proxy.Frames.tcpBuf(vmIp, dev.colo.proxy.Frames.CLIENT_IP, 80, port,
                seq, 1001, flags, payload, dev.colo.proxy.Frames.VM_MAC, dev.colo.proxy.Frames.CLIENT_MAC))));
    }

    static long usedHeap() throws InterruptedException {
        Runtime rt = Runtime.getRuntime();
        for (int i = 0; i < 5; i++) {
            System.gc();
            Thread.sleep(100);
        }
        return rt.totalMemory() - rt.freeMemory();
    }
}
