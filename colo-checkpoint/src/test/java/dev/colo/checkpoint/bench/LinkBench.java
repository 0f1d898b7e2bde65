package dev.colo.checkpoint.bench;

import com.google.protobuf.ByteString;
import dev.colo.checkpoint.link.LinkEndpoint;
import dev.colo.checkpoint.link.LinkSession;
import dev.colo.checkpoint.link.PairCertificates;
import dev.colo.checkpoint.link.proto.Envelope;
import dev.colo.checkpoint.link.proto.PageBatch;
import io.netty.channel.EventLoopGroup;
import io.netty.channel.MultiThreadIoEventLoopGroup;
import io.netty.channel.epoll.EpollIoHandler;
import java.net.InetSocketAddress;
import java.nio.file.Files;
import java.time.Duration;
import java.util.Random;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.AtomicReference;

/**
 * Shipping throughput of the replication link (bench/link): page batches of 256 pages (1 MiB of
 * incompressible data each) over mutual TLS 1.3 on loopback, with the sender honouring
 * backpressure, timed until the receiver has them all. Usage: LinkBench [MIB=1024]
 */
public final class LinkBench {
    public static void main(String[] args) throws Exception {
        int mib = args.length > 0 ? Integer.parseInt(args[0]) : 1024;
        var dir = Files.createTempDirectory("colo-linkbench");
        PairCertificates.Ca ca = PairCertificates.newCa("bench", Duration.ofDays(1));
        var a = PairCertificates.issue(ca, "a", Duration.ofDays(1), dir.resolve("a"));
        var b = PairCertificates.issue(ca, "b", Duration.ofDays(1), dir.resolve("b"));
        EventLoopGroup serverGroup = new MultiThreadIoEventLoopGroup(1, EpollIoHandler.newFactory());
        EventLoopGroup clientGroup = new MultiThreadIoEventLoopGroup(1, EpollIoHandler.newFactory());
        AtomicLong received = new AtomicLong();
        int batches = mib + 64; // the first 64 warm up TLS and the JIT
        CountDownLatch all = new CountDownLatch(batches);
        AtomicReference<Long> warmEnd = new AtomicReference<>();
        LinkEndpoint server = LinkEndpoint.server("bench", "b", serverGroup, new InetSocketAddress("127.0.0.1", 0), b, new LinkEndpoint.Listener() {
            @Override
            public void onReady(LinkSession s) {
            }

            @Override
            public void onMessage(LinkSession s, Envelope m) {
                received.addAndGet(m.getPages().getData().size());
                all.countDown();
                if (all.getCount() == mib) {
                    warmEnd.set(System.nanoTime());
                }
            }
        });
        AtomicReference<LinkSession> session = new AtomicReference<>();
        LinkEndpoint client = LinkEndpoint.client("bench", "a", clientGroup, new InetSocketAddress("127.0.0.1", server.port()), a,
                new LinkEndpoint.Listener() {
                    @Override
                    public void onReady(LinkSession s) {
                        session.set(s);
                    }

                    @Override
                    public void onMessage(LinkSession s, Envelope m) {
                    }
                });
        while (session.get() == null) {
            Thread.sleep(10);
        }
        byte[] data = new byte[256 * 4096];
        new Random(1).nextBytes(data);
        Envelope msg = Envelope.newBuilder().setProtocolVersion(1).setPair("bench").setTerm(1)
                .setPages(PageBatch.newBuilder().setCheckpointSeq(1).setCodec("raw").setRawLength(data.length)
                        .setData(ByteString.copyFrom(data))).build();
        long waits = 0;
        for (int i = 0; i < batches; i++) {
            while (!session.get().writable()) {
                waits++;
                Thread.sleep(0, 200_000);
            }
            session.get().send(msg);
        }
        all.await(300, TimeUnit.SECONDS);
        long end = System.nanoTime();
        double seconds = (end - warmEnd.get()) / 1e9;
        System.out.printf("link shipping over mTLS on loopback: %d MiB in %.2f s = %.0f MB/s (%d backpressure waits)%n",
                mib, seconds, mib * 1048576.0 / seconds / 1e6, waits);
        client.close();
        server.close();
        clientGroup.shutdownGracefully(0, 1, TimeUnit.SECONDS).syncUninterruptibly();
        serverGroup.shutdownGracefully(0, 1, TimeUnit.SECONDS).syncUninterruptibly();
    }
}
