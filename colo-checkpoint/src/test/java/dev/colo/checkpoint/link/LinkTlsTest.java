package dev.colo.checkpoint.link;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import dev.colo.checkpoint.link.proto.Envelope;
import dev.colo.checkpoint.link.proto.Heartbeat;
import dev.colo.checkpoint.link.proto.Status;
import io.netty.bootstrap.Bootstrap;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.Unpooled;
import io.netty.channel.Channel;
import io.netty.channel.ChannelHandlerContext;
import io.netty.channel.ChannelInitializer;
import io.netty.channel.EventLoopGroup;
import io.netty.channel.MultiThreadIoEventLoopGroup;
import io.netty.channel.SimpleChannelInboundHandler;
import io.netty.channel.epoll.EpollIoHandler;
import io.netty.channel.epoll.EpollSocketChannel;
import io.netty.handler.codec.LengthFieldBasedFrameDecoder;
import io.netty.handler.ssl.SslContext;
import io.netty.handler.ssl.SslContextBuilder;
import io.netty.handler.ssl.SslHandler;
import java.net.InetSocketAddress;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/** The link over real loopback TLS: who gets in, who does not, and that the server survives. */
class LinkTlsTest {
    static final Duration D = Duration.ofSeconds(10);
    EventLoopGroup group;
    Path dir;
    PairCertificates.NodeFiles a;
    PairCertificates.NodeFiles b;
    PairCertificates.NodeFiles stranger;

    /** Collects events. */
    static final class Events implements LinkEndpoint.Listener {
        final List<LinkSession> ready = new CopyOnWriteArrayList<>();
        final List<Envelope> messages = new CopyOnWriteArrayList<>();
        final List<String> closed = new CopyOnWriteArrayList<>();

        @Override
        public void onReady(LinkSession s) {
            ready.add(s);
        }

        @Override
        public void onMessage(LinkSession s, Envelope m) {
            messages.add(m);
        }

        @Override
        public void onClosed(LinkSession s, String reason) {
            closed.add(reason);
        }
    }

    @BeforeEach
    void certs() throws Exception {
        group = new MultiThreadIoEventLoopGroup(1, EpollIoHandler.newFactory());
        dir = Files.createTempDirectory("colo-link");
        PairCertificates.Ca ca = PairCertificates.newCa("web1", Duration.ofDays(1));
        a = PairCertificates.issue(ca, "host-a", Duration.ofDays(1), dir.resolve("a"));
        b = PairCertificates.issue(ca, "host-b", Duration.ofDays(1), dir.resolve("b"));
        PairCertificates.Ca other = PairCertificates.newCa("another-pair", Duration.ofDays(1));
        stranger = PairCertificates.issue(other, "intruder", Duration.ofDays(1), dir.resolve("x"));
    }

    @AfterEach
    void stop() {
        group.shutdownGracefully(0, 1, java.util.concurrent.TimeUnit.SECONDS).syncUninterruptibly();
    }

    LinkEndpoint server(Events e) throws Exception {
        return LinkEndpoint.server("web1", "host-a", group, new InetSocketAddress("127.0.0.1", 0), a, e);
    }

    @Test
    void pairCertificatesAreAcceptedAndMessagesFlowBothWays() throws Exception {
        Events se = new Events();
        Events ce = new Events();
        try (LinkEndpoint s = server(se);
                LinkEndpoint c = LinkEndpoint.client("web1", "host-b", group, new InetSocketAddress("127.0.0.1", s.port()), b, ce)) {
            await().atMost(D).until(() -> !se.ready.isEmpty() && !ce.ready.isEmpty());
            assertThat(se.ready.get(0).peerNode()).isEqualTo("host-b");
            assertThat(ce.ready.get(0).peerNode()).isEqualTo("host-a");
            ce.ready.get(0).send(Envelope.newBuilder().setProtocolVersion(1).setPair("web1").setTerm(3)
                    .setHeartbeat(Heartbeat.newBuilder().setSentNs(42)).build());
            await().atMost(D).until(() -> !se.messages.isEmpty());
            assertThat(se.messages.get(0).getHeartbeat().getSentNs()).isEqualTo(42);
            se.ready.get(0).send(Envelope.newBuilder().setProtocolVersion(1).setPair("web1").setTerm(3)
                    .setHeartbeat(Heartbeat.newBuilder().setEchoNs(42)).build());
            await().atMost(D).until(() -> !ce.messages.isEmpty());
        }
    }

    @Test
    void aCertificateFromAnotherCaIsRefused() throws Exception {
        Events se = new Events();
        Events ce = new Events();
        try (LinkEndpoint s = server(se);
                LinkEndpoint c = LinkEndpoint.client("web1", "intruder", group, new InetSocketAddress("127.0.0.1", s.port()), stranger, ce)) {
            Thread.sleep(1500);
            assertThat(se.ready).isEmpty();
            assertThat(ce.ready).isEmpty();
        }
    }

    @Test
    void aClientWithoutACertificateIsRefused() throws Exception {
        Events se = new Events();
        try (LinkEndpoint s = server(se)) {
            SslContext noCert = SslContextBuilder.forClient().trustManager(a.caCertificate().toFile()).protocols("TLSv1.3").endpointIdentificationAlgorithm(null).build();
            List<Throwable> failures = new CopyOnWriteArrayList<>();
            Channel ch = rawClient(s.port(), noCert, failures, null);
            await().atMost(D).until(() -> !ch.isActive());
            assertThat(se.ready).isEmpty();
        }
    }

    @Test
    void anotherProtocolVersionIsRefusedWithBothVersions() throws Exception {
        Events se = new Events();
        try (LinkEndpoint s = server(se)) {
            SslContext ctx = SslContextBuilder.forClient().keyManager(b.certificate().toFile(), b.privateKey().toFile())
                    .trustManager(b.caCertificate().toFile()).protocols("TLSv1.3").endpointIdentificationAlgorithm(null).build();
            List<ByteBuf> replies = new CopyOnWriteArrayList<>();
            Channel ch = rawClient(s.port(), ctx, new CopyOnWriteArrayList<>(), replies);
            Envelope hello = Envelope.newBuilder().setProtocolVersion(99).setPair("web1")
                    .setHello(dev.colo.checkpoint.link.proto.Hello.newBuilder().setNode("future")).build();
            byte[] body = hello.toByteArray();
            ch.writeAndFlush(Unpooled.buffer().writeInt(body.length).writeBytes(body));
            await().atMost(D).until(() -> !replies.isEmpty());
            Envelope err = Envelope.parseFrom(new io.netty.buffer.ByteBufInputStream(replies.get(0)));
            replies.forEach(ByteBuf::release);
            assertThat(err.getError().getStatus()).isEqualTo(Status.VERSION_MISMATCH);
            assertThat(err.getError().getPeerProtocolVersion()).isEqualTo(99);
            assertThat(err.getError().getDetail()).contains("99").contains("(" + LinkProtocol.VERSION + ")");
            await().atMost(D).until(() -> !ch.isActive());
            assertThat(se.ready).isEmpty();
        }
    }

    @Test
    void garbageAndOversizedFramesCloseOnlyThatConnection() throws Exception {
        Events se = new Events();
        try (LinkEndpoint s = server(se)) {
            SslContext ctx = SslContextBuilder.forClient().keyManager(b.certificate().toFile(), b.privateKey().toFile())
                    .trustManager(b.caCertificate().toFile()).protocols("TLSv1.3").endpointIdentificationAlgorithm(null).build();
            Channel garbage = rawClient(s.port(), ctx, new CopyOnWriteArrayList<>(), new CopyOnWriteArrayList<>());
            garbage.writeAndFlush(Unpooled.buffer().writeInt(5).writeBytes(new byte[] {(byte) 0xff, (byte) 0xff, (byte) 0xff, 1, 2}));
            await().atMost(D).until(() -> !garbage.isActive());
            Channel huge = rawClient(s.port(), ctx, new CopyOnWriteArrayList<>(), new CopyOnWriteArrayList<>());
            huge.writeAndFlush(Unpooled.buffer().writeInt(LinkProtocol.MAX_FRAME + 1).writeBytes(new byte[64]));
            await().atMost(D).until(() -> !huge.isActive());
            // The server is still there for a good peer.
            Events ce = new Events();
            try (LinkEndpoint c = LinkEndpoint.client("web1", "host-b", group, new InetSocketAddress("127.0.0.1", s.port()), b, ce)) {
                await().atMost(D).until(() -> !se.ready.isEmpty() && !ce.ready.isEmpty());
            }
        }
    }

    /** A TLS client without our codec, to send whatever a misbehaving peer would. */
    Channel rawClient(int port, SslContext ctx, List<Throwable> failures, List<ByteBuf> frames) throws Exception {
        Channel ch = new Bootstrap().group(group).channel(EpollSocketChannel.class).handler(new ChannelInitializer<Channel>() {
            @Override
            protected void initChannel(Channel c) {
                SslHandler tls = ctx.newHandler(c.alloc());
                c.pipeline().addLast(tls, new LengthFieldBasedFrameDecoder(1 << 20, 0, 4, 0, 4), new SimpleChannelInboundHandler<ByteBuf>() {
                    @Override
                    protected void channelRead0(ChannelHandlerContext x, ByteBuf m) {
                        if (frames != null) {
                            frames.add(m.copy());
                        }
                    }

                    @Override
                    public void exceptionCaught(ChannelHandlerContext x, Throwable cause) {
                        failures.add(cause);
                        x.close();
                    }
                });
            }
        }).connect("127.0.0.1", port).sync().channel();
        ch.pipeline().get(SslHandler.class).handshakeFuture().await(5000);
        return ch;
    }
}
