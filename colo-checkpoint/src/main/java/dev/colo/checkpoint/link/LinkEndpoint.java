package dev.colo.checkpoint.link;

import dev.colo.checkpoint.link.proto.Envelope;
import dev.colo.checkpoint.link.proto.Hello;
import dev.colo.checkpoint.link.proto.HelloReply;
import dev.colo.checkpoint.link.proto.Status;
import io.netty.bootstrap.Bootstrap;
import io.netty.bootstrap.ServerBootstrap;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.ByteBufInputStream;
import io.netty.channel.Channel;
import io.netty.channel.ChannelFuture;
import io.netty.channel.ChannelFutureListener;
import io.netty.channel.ChannelHandlerContext;
import io.netty.channel.ChannelInitializer;
import io.netty.channel.ChannelOption;
import io.netty.channel.EventLoopGroup;
import io.netty.channel.SimpleChannelInboundHandler;
import io.netty.channel.WriteBufferWaterMark;
import io.netty.channel.epoll.EpollServerSocketChannel;
import io.netty.channel.epoll.EpollSocketChannel;
import io.netty.handler.codec.LengthFieldBasedFrameDecoder;
import io.netty.handler.codec.LengthFieldPrepender;
import io.netty.handler.codec.MessageToByteEncoder;
import io.netty.handler.ssl.ClientAuth;
import io.netty.handler.ssl.SslContext;
import io.netty.handler.ssl.SslContextBuilder;
import io.netty.handler.ssl.SslHandler;
import java.io.IOException;
import java.net.InetSocketAddress;
import java.util.concurrent.TimeUnit;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * One end of the replication link. The server accepts one peer at a time; the client connects and
 * reconnects with backoff. Both require the peer's certificate to be signed by the pair's CA, and
 * the first message to carry our protocol version and pair name; anything else is refused with a
 * reason and the connection closed, never the daemon.
 */
public final class LinkEndpoint implements AutoCloseable {
    private static final Logger log = LoggerFactory.getLogger(LinkEndpoint.class);

    /** Link events, delivered on the link's event loop. */
    public interface Listener {
        void onReady(LinkSession session);

        void onMessage(LinkSession session, Envelope message);

        default void onClosed(LinkSession session, String reason) {
        }
    }

    private final String pair;
    private final String node;
    private final EventLoopGroup group;
    private final Listener listener;
    private final boolean server;
    private final SslContext ssl;
    private volatile boolean closed;
    private Channel listenerChannel;
    private long backoffMs = 100;

    private LinkEndpoint(String pair, String node, EventLoopGroup group, Listener listener, boolean server, SslContext ssl) {
        this.pair = pair;
        this.node = node;
        this.group = group;
        this.listener = listener;
        this.server = server;
        this.ssl = ssl;
    }

    public static LinkEndpoint server(String pair, String node, EventLoopGroup group, InetSocketAddress bind,
            PairCertificates.NodeFiles tls, Listener listener) throws IOException, InterruptedException {
        SslContext ctx = SslContextBuilder.forServer(tls.certificate().toFile(), tls.privateKey().toFile())
                .trustManager(tls.caCertificate().toFile()).clientAuth(ClientAuth.REQUIRE).protocols("TLSv1.3").build();
        LinkEndpoint e = new LinkEndpoint(pair, node, group, listener, true, ctx);
        e.listenerChannel = new ServerBootstrap().group(group).channel(EpollServerSocketChannel.class)
                .option(ChannelOption.SO_REUSEADDR, true).childOption(ChannelOption.TCP_NODELAY, true)
                .childOption(ChannelOption.WRITE_BUFFER_WATER_MARK, new WriteBufferWaterMark(4 << 20, 32 << 20))
                .childHandler(e.initializer(null)).bind(bind).sync().channel();
        return e;
    }

    public static LinkEndpoint client(String pair, String node, EventLoopGroup group, InetSocketAddress peer,
            PairCertificates.NodeFiles tls, Listener listener) throws IOException {
        // Peers are identified by the pair's own CA, which signs only this pair's two nodes; daemons
        // may be addressed by IP, so the certificate is not checked against a host name.
        SslContext ctx = SslContextBuilder.forClient().keyManager(tls.certificate().toFile(), tls.privateKey().toFile())
                .trustManager(tls.caCertificate().toFile()).protocols("TLSv1.3").endpointIdentificationAlgorithm(null).build();
        LinkEndpoint e = new LinkEndpoint(pair, node, group, listener, false, ctx);
        e.connect(peer);
        return e;
    }

    public int port() {
        return ((InetSocketAddress) listenerChannel.localAddress()).getPort();
    }

    private void connect(InetSocketAddress peer) {
        if (closed) {
            return;
        }
        new Bootstrap().group(group).channel(EpollSocketChannel.class).option(ChannelOption.TCP_NODELAY, true)
                .option(ChannelOption.WRITE_BUFFER_WATER_MARK, new WriteBufferWaterMark(4 << 20, 32 << 20))
                .option(ChannelOption.CONNECT_TIMEOUT_MILLIS, 2000)
                .handler(initializer(peer)).connect(peer).addListener((ChannelFuture f) -> {
                    if (!f.isSuccess()) {
                        scheduleReconnect(peer, "connect failed: " + f.cause().getMessage());
                    }
                });
    }

    private void scheduleReconnect(InetSocketAddress peer, String why) {
        if (closed) {
            return;
        }
        long delay = backoffMs;
        backoffMs = Math.min(5_000, backoffMs * 2);
        log.atInfo().addKeyValue("pair", pair).addKeyValue("peer", peer).addKeyValue("reason", why).addKeyValue("retry_ms", delay)
                .log("replication link down, reconnecting");
        group.next().schedule(() -> connect(peer), delay, TimeUnit.MILLISECONDS);
    }

    private ChannelInitializer<Channel> initializer(InetSocketAddress reconnectTo) {
        return new ChannelInitializer<>() {
            @Override
            protected void initChannel(Channel ch) {
                SslHandler tls = ssl.newHandler(ch.alloc());
                ch.pipeline().addLast("tls", tls);
                ch.pipeline().addLast("frames", new LengthFieldBasedFrameDecoder(LinkProtocol.MAX_FRAME, 0, 4, 0, 4));
                ch.pipeline().addLast("length", new LengthFieldPrepender(4));
                ch.pipeline().addLast("encode", new EnvelopeEncoder());
                ch.pipeline().addLast("session", new SessionHandler(tls, reconnectTo));
            }
        };
    }

    /** Serializes envelopes. */
    private static final class EnvelopeEncoder extends MessageToByteEncoder<Envelope> {
        @Override
        protected void encode(ChannelHandlerContext ctx, Envelope msg, ByteBuf out) throws IOException {
            msg.writeTo(new io.netty.buffer.ByteBufOutputStream(out));
        }
    }

    /** Handshake, version gate and delivery for one connection. */
    private final class SessionHandler extends SimpleChannelInboundHandler<ByteBuf> {
        private final SslHandler tls;
        private final InetSocketAddress reconnectTo;
        private LinkSession session;
        private String closeReason = "connection closed";

        SessionHandler(SslHandler tls, InetSocketAddress reconnectTo) {
            this.tls = tls;
            this.reconnectTo = reconnectTo;
        }

        @Override
        public void channelActive(ChannelHandlerContext ctx) {
            tls.handshakeFuture().addListener(f -> {
                if (!f.isSuccess()) {
                    closeReason = "TLS handshake failed: " + rootMessage(f.cause());
                    log.atWarn().addKeyValue("pair", pair).addKeyValue("peer", ctx.channel().remoteAddress())
                            .addKeyValue("reason", closeReason).log("replication peer refused");
                    ctx.close();
                    return;
                }
                if (!server) {
                    ctx.writeAndFlush(Envelope.newBuilder().setProtocolVersion(LinkProtocol.VERSION).setPair(pair)
                            .setHello(Hello.newBuilder().setNode(node).addCapabilities("lz4").addCapabilities("zstd")).build());
                }
            });
            ctx.fireChannelActive();
        }

        @Override
        protected void channelRead0(ChannelHandlerContext ctx, ByteBuf frame) {
            Envelope e;
            try {
                e = Envelope.parseFrom(new ByteBufInputStream(frame));
            } catch (IOException ex) {
                refuse(ctx, Status.CORRUPT, "malformed message: " + ex.getMessage(), 0);
                return;
            }
            if (session == null) {
                handshake(ctx, e);
                return;
            }
            listener.onMessage(session, e);
        }

        private void handshake(ChannelHandlerContext ctx, Envelope e) {
            if (e.getProtocolVersion() != LinkProtocol.VERSION) {
                log.atError().addKeyValue("pair", pair).addKeyValue("peer", ctx.channel().remoteAddress())
                        .addKeyValue("our_version", LinkProtocol.VERSION).addKeyValue("peer_version", e.getProtocolVersion())
                        .log("replication peer speaks another protocol version, refused; upgrade both daemons to the same colo release");
                refuse(ctx, Status.VERSION_MISMATCH, "protocol version " + e.getProtocolVersion() + " is not ours (" + LinkProtocol.VERSION + ")",
                        e.getProtocolVersion());
                return;
            }
            if (!pair.equals(e.getPair())) {
                refuse(ctx, Status.UNKNOWN_PAIR, "pair '" + e.getPair() + "' is not ours ('" + pair + "')", e.getProtocolVersion());
                return;
            }
            String peerNode;
            if (server) {
                if (e.getBodyCase() != Envelope.BodyCase.HELLO) {
                    refuse(ctx, Status.CORRUPT, "first message must be hello, got " + e.getBodyCase(), e.getProtocolVersion());
                    return;
                }
                peerNode = e.getHello().getNode();
                ctx.writeAndFlush(Envelope.newBuilder().setProtocolVersion(LinkProtocol.VERSION).setPair(pair)
                        .setHelloReply(HelloReply.newBuilder().setStatus(Status.OK).setNode(node).addCapabilities("lz4").addCapabilities("zstd")).build());
            } else {
                if (e.getBodyCase() == Envelope.BodyCase.ERROR) {
                    closeReason = "peer refused us: " + e.getError().getStatus() + " " + e.getError().getDetail();
                    log.atError().addKeyValue("pair", pair).addKeyValue("reason", closeReason).log("replication peer refused us");
                    ctx.close();
                    return;
                }
                if (e.getBodyCase() != Envelope.BodyCase.HELLO_REPLY || e.getHelloReply().getStatus() != Status.OK) {
                    refuse(ctx, Status.CORRUPT, "expected an OK hello reply, got " + e.getBodyCase(), e.getProtocolVersion());
                    return;
                }
                peerNode = e.getHelloReply().getNode();
                backoffMs = 100;
            }
            session = new LinkSession(ctx.channel(), peerNode);
            log.atInfo().addKeyValue("pair", pair).addKeyValue("peer_node", peerNode).addKeyValue("peer", ctx.channel().remoteAddress())
                    .log("replication link up");
            listener.onReady(session);
        }

        private void refuse(ChannelHandlerContext ctx, Status status, String detail, int peerVersion) {
            closeReason = "refused: " + detail;
            log.atWarn().addKeyValue("pair", pair).addKeyValue("peer", ctx.channel().remoteAddress()).addKeyValue("status", status)
                    .addKeyValue("reason", detail).log("replication message refused, closing that connection");
            ctx.writeAndFlush(LinkProtocol.refusal(pair, 0, status, detail, peerVersion)).addListener(ChannelFutureListener.CLOSE);
        }

        @Override
        public void exceptionCaught(ChannelHandlerContext ctx, Throwable cause) {
            closeReason = "link error: " + rootMessage(cause);
            log.atWarn().addKeyValue("pair", pair).addKeyValue("peer", ctx.channel().remoteAddress()).addKeyValue("reason", closeReason)
                    .log("replication connection failed, closing it");
            ctx.close();
        }

        @Override
        public void channelInactive(ChannelHandlerContext ctx) {
            if (session != null) {
                listener.onClosed(session, closeReason);
            }
            if (reconnectTo != null) {
                scheduleReconnect(reconnectTo, closeReason);
            }
        }
    }

    private static String rootMessage(Throwable t) {
        while (t.getCause() != null) {
            t = t.getCause();
        }
        return t.getClass().getSimpleName() + ": " + t.getMessage();
    }

    @Override
    public void close() {
        closed = true;
        if (listenerChannel != null) {
            listenerChannel.close().syncUninterruptibly();
        }
    }
}
