package dev.colo.proxy.standalone;

import dev.colo.proxy.compare.CheckpointRequest;
import dev.colo.proxy.compare.CompareConfig;
import dev.colo.proxy.compare.CompareSink;
import dev.colo.proxy.compare.CompareStats;
import dev.colo.proxy.compare.Comparator;
import dev.colo.proxy.frame.Frame;
import dev.colo.proxy.frame.FrameDecoder;
import dev.colo.proxy.frame.FrameEncoder;
import dev.colo.proxy.frame.FrameErrors;
import io.netty.bootstrap.Bootstrap;
import io.netty.bootstrap.ServerBootstrap;
import io.netty.buffer.Unpooled;
import io.netty.channel.Channel;
import io.netty.channel.ChannelFuture;
import io.netty.channel.ChannelHandlerContext;
import io.netty.channel.ChannelInitializer;
import io.netty.channel.ChannelOption;
import io.netty.channel.EventLoop;
import io.netty.channel.EventLoopGroup;
import io.netty.channel.MultiThreadIoEventLoopGroup;
import io.netty.channel.SimpleChannelInboundHandler;
import io.netty.channel.WriteBufferWaterMark;
import io.netty.channel.epoll.EpollDomainSocketChannel;
import io.netty.channel.epoll.EpollIoHandler;
import io.netty.channel.epoll.EpollServerDomainSocketChannel;
import io.netty.channel.epoll.EpollServerSocketChannel;
import io.netty.channel.epoll.EpollSocketChannel;
import java.net.InetSocketAddress;
import java.net.SocketAddress;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.EnumMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.LongAdder;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * {@code colo compare}: QEMU's colo-compare as a standalone process. All sockets and the comparator
 * share one event loop thread, so the comparator needs no locks. Each socket is independent: a
 * broken or misbehaving peer on one never stops the others.
 */
public final class StandaloneCompare implements AutoCloseable {
    private static final Logger log = LoggerFactory.getLogger(StandaloneCompare.class);

    /** The four sockets. */
    public enum Role { PRIMARY_IN, SECONDARY_IN, OUTDEV, NOTIFY_DEV }

    /** Outdev takes bursts of released frames; backpressure starts at 4 MiB, not Netty's 64 KiB. */
    private static final WriteBufferWaterMark WATER_MARK = new WriteBufferWaterMark(1 << 20, 4 << 20);

    private final CompareOptions options;
    private final EventLoopGroup group;
    private final EventLoop loop;
    private final Comparator comparator;
    private final Map<Role, Channel> peers = new EnumMap<>(Role.class);
    private final Map<Role, Channel> listeners = new EnumMap<>(Role.class);
    private final Map<Role, FrameErrors> errors = new EnumMap<>(Role.class);
    private final List<Channel> primaryReaders = new ArrayList<>();
    private final LongAdder releasedWithoutOutdev = new LongAdder();
    private final LongAdder checkpointsRequested = new LongAdder();
    private final LongAdder checkpointsDone = new LongAdder();
    private final CountDownLatch closed = new CountDownLatch(1);
    private volatile boolean stopping;

    public StandaloneCompare(CompareOptions options) {
        this.options = options;
        this.group = new MultiThreadIoEventLoopGroup(1, r -> {
            Thread t = new Thread(r, "colo-compare");
            t.setDaemon(false);
            return t;
        }, EpollIoHandler.newFactory());
        this.loop = group.next();
        CompareConfig cfg = CompareConfig.defaults().withCompareTimeoutMs(options.compareTimeoutMs()).withMaxHeldPerFlow(options.maxQueueSize());
        this.comparator = new Comparator(cfg, new Sink());
        for (Role r : Role.values()) {
            errors.put(r, new FrameErrors());
        }
    }

    /** Binds or connects every socket and starts ageing; returns once listeners are bound. */
    public StandaloneCompare start() throws InterruptedException {
        open(Role.PRIMARY_IN, options.primaryIn());
        open(Role.SECONDARY_IN, options.secondaryIn());
        open(Role.OUTDEV, options.outdev());
        if (options.notifyDev() != null) {
            open(Role.NOTIFY_DEV, options.notifyDev());
        }
        loop.scheduleAtFixedRate(() -> {
            comparator.doWork(System.nanoTime());
            flushOutdev();
        },
                options.expiredScanCycleMs(), options.expiredScanCycleMs(), TimeUnit.MILLISECONDS);
        loop.scheduleAtFixedRate(this::logStats, 60, 60, TimeUnit.SECONDS);
        log.atInfo().addKeyValue("primary_in", options.primaryIn()).addKeyValue("secondary_in", options.secondaryIn())
                .addKeyValue("outdev", options.outdev()).addKeyValue("notify_dev", options.notifyDev())
                .addKeyValue("compare_timeout_ms", options.compareTimeoutMs()).addKeyValue("vnet_hdr", options.vnetHdr())
                .log("colo compare started");
        return this;
    }

    /** The bound address of a listening socket (useful with port 0). */
    public SocketAddress boundAddress(Role role) {
        Channel c = listeners.get(role);
        return c == null ? null : c.localAddress();
    }

    public int boundPort(Role role) {
        return ((InetSocketAddress) boundAddress(role)).getPort();
    }

    private void open(Role role, Endpoint ep) throws InterruptedException {
        ChannelInitializer<Channel> init = new ChannelInitializer<>() {
            @Override
            protected void initChannel(Channel ch) {
                // As QEMU does: with vnet headers on, notify messages we receive carry the vnet field
                // too, but the ones we send never do.
                boolean vnet = options.vnetHdr();
                ch.pipeline().addLast(new FrameDecoder(vnet, FrameDecoder.DEFAULT_MAX_FRAME, errors.get(role), role.name().toLowerCase()));
                ch.pipeline().addLast(new FrameEncoder(vnet && role != Role.NOTIFY_DEV));
                ch.pipeline().addLast(new RoleHandler(role));
            }
        };
        if (ep.server()) {
            if (ep.unix()) {
                deleteQuietly(ep); // a stale socket file from an earlier run
            }
            ServerBootstrap sb = new ServerBootstrap().group(group)
                    .channel(ep.unix() ? EpollServerDomainSocketChannel.class : EpollServerSocketChannel.class)
                    .childOption(ChannelOption.WRITE_BUFFER_WATER_MARK, WATER_MARK)
                    .childHandler(init);
            if (!ep.unix()) {
                sb.option(ChannelOption.SO_REUSEADDR, true);
            }
            ChannelFuture f = sb.bind(ep.address()).sync();
            listeners.put(role, f.channel());
        } else {
            connect(role, ep, init, 0);
        }
    }

    private static void deleteQuietly(Endpoint ep) {
        try {
            Files.deleteIfExists(Path.of(ep.path()));
        } catch (java.io.IOException ignored) {
            // Best effort; the next start removes it too.
        }
    }

    private void connect(Role role, Endpoint ep, ChannelInitializer<Channel> init, int attempt) {
        if (stopping) {
            return;
        }
        new Bootstrap().group(group).channel(ep.unix() ? EpollDomainSocketChannel.class : EpollSocketChannel.class)
                .option(ChannelOption.WRITE_BUFFER_WATER_MARK, WATER_MARK)
                .handler(init).connect(ep.address()).addListener((ChannelFuture f) -> {
                    if (f.isSuccess()) {
                        f.channel().closeFuture().addListener(x -> loop.schedule(() -> connect(role, ep, init, 0), 1, TimeUnit.SECONDS));
                        return;
                    }
                    if (attempt % 10 == 0) {
                        log.atWarn().addKeyValue("socket", role.name().toLowerCase()).addKeyValue("address", ep)
                                .addKeyValue("reason", f.cause().getMessage()).addKeyValue("attempt", attempt + 1)
                                .log("cannot connect, retrying every second");
                    }
                    loop.schedule(() -> connect(role, ep, init, attempt + 1), 1, TimeUnit.SECONDS);
                });
    }

    private final class RoleHandler extends SimpleChannelInboundHandler<Frame> {
        private final Role role;

        RoleHandler(Role role) {
            super(Frame.class, false);
            this.role = role;
        }

        @Override
        public void channelActive(ChannelHandlerContext ctx) {
            Channel old = peers.put(role, ctx.channel());
            if (old != null && old != ctx.channel()) {
                log.atWarn().addKeyValue("socket", role.name().toLowerCase()).addKeyValue("peer", ctx.channel().remoteAddress())
                        .log("second peer on a socket; the newest one wins");
                old.close();
            }
            if (role == Role.PRIMARY_IN) {
                primaryReaders.add(ctx.channel());
                Channel out = peers.get(Role.OUTDEV);
                ctx.channel().config().setAutoRead(out == null || out.isWritable());
            }
            log.atInfo().addKeyValue("socket", role.name().toLowerCase()).addKeyValue("peer", ctx.channel().remoteAddress())
                    .log("peer connected");
        }

        @Override
        public void channelInactive(ChannelHandlerContext ctx) {
            peers.remove(role, ctx.channel());
            primaryReaders.remove(ctx.channel());
            if (!stopping) {
                log.atInfo().addKeyValue("socket", role.name().toLowerCase()).log("peer disconnected");
            }
        }

        @Override
        public void channelReadComplete(ChannelHandlerContext ctx) {
            flushOutdev();
            ctx.fireChannelReadComplete();
        }

        @Override
        public void channelWritabilityChanged(ChannelHandlerContext ctx) {
            if (role == Role.OUTDEV) {
                // Backpressure: stop reading the primary while outdev cannot take more.
                boolean writable = ctx.channel().isWritable();
                for (Channel c : primaryReaders) {
                    c.config().setAutoRead(writable);
                }
            }
            ctx.fireChannelWritabilityChanged();
        }

        @Override
        protected void channelRead0(ChannelHandlerContext ctx, Frame frame) {
            long now = System.nanoTime();
            switch (role) {
                case PRIMARY_IN -> comparator.onPrimary(frame, now);
                case SECONDARY_IN -> comparator.onSecondary(frame, now);
                case NOTIFY_DEV -> onNotify(ctx, frame, now);
                case OUTDEV -> frame.release(); // outdev only receives from us
            }
        }

        @Override
        public void exceptionCaught(ChannelHandlerContext ctx, Throwable cause) {
            log.atWarn().addKeyValue("socket", role.name().toLowerCase()).addKeyValue("reason", String.valueOf(cause))
                    .log("socket error, closing that socket only");
            ctx.close();
        }
    }

    private void onNotify(ChannelHandlerContext ctx, Frame frame, long now) {
        String msg;
        try {
            msg = frame.ethernet().toString(StandardCharsets.US_ASCII).trim();
        } finally {
            frame.release();
        }
        if (msg.startsWith(NotifyMessages.PROXY_INIT)) {
            send(ctx.channel(), NotifyMessages.COMPARE_INIT);
            log.atInfo().log("notify handshake done");
        } else if (msg.startsWith(NotifyMessages.CHECKPOINT_DONE)) {
            checkpointsDone.increment();
            comparator.onCheckpointCommitted(now);
            flushOutdev();
            log.atInfo().addKeyValue("checkpoints", checkpointsDone.sum()).log("checkpoint done, held output released");
        } else {
            log.atWarn().addKeyValue("message", msg.length() > 64 ? msg.substring(0, 64) : msg).log("unknown notify message ignored");
        }
    }

    private static void send(Channel ch, String text) {
        ch.writeAndFlush(Frame.of(Unpooled.copiedBuffer(text, StandardCharsets.US_ASCII)));
    }

    private final class Sink implements CompareSink {
        @Override
        public void release(Frame primary) {
            Channel out = peers.get(Role.OUTDEV);
            if (out == null || !out.isActive()) {
                releasedWithoutOutdev.increment();
                primary.release();
                return;
            }
            out.write(primary, out.voidPromise());
            outdevDirty = true;
        }

        @Override
        public void checkpoint(CheckpointRequest r) {
            checkpointsRequested.increment();
            // QEMU sends DO_CHECKPOINT to any connected notify peer; the hello is optional.
            Channel notify = peers.get(Role.NOTIFY_DEV);
            boolean sent = notify != null && notify.isActive();
            log.atWarn().addKeyValue("reason", r.reason().name().toLowerCase()).addKeyValue("flow", r.flow())
                    .addKeyValue("offset", r.offset()).addKeyValue("detail", r.detail())
                    .addKeyValue("action", sent ? "DO_CHECKPOINT sent" : options.notifyDev() == null
                            ? "no notify_dev: released held output (monitor mode)" : "notify_dev not connected: waiting")
                    .log("checkpoint needed");
            if (sent) {
                send(notify, NotifyMessages.DO_CHECKPOINT);
            } else if (options.notifyDev() == null) {
                loop.execute(() -> {
                    comparator.onCheckpointCommitted(System.nanoTime());
                    flushOutdev();
                });
            }
        }
    }

    private boolean outdevDirty;

    /** One flush per batch of reads, not per frame. */
    private void flushOutdev() {
        if (outdevDirty) {
            outdevDirty = false;
            Channel out = peers.get(Role.OUTDEV);
            if (out != null) {
                out.flush();
            }
        }
    }

    private void logStats() {
        CompareStats s = comparator.stats();
        log.atInfo().addKeyValue("released", s.released()).addKeyValue("matched", s.matchedFrames())
                .addKeyValue("compared_bytes", s.comparedBytes()).addKeyValue("held", s.heldNow()).addKeyValue("flows", s.flowsNow())
                .addKeyValue("checkpoints_requested", checkpointsRequested.sum()).addKeyValue("checkpoints_done", checkpointsDone.sum())
                .addKeyValue("frame_errors", errors.toString()).log("compare stats");
    }

    /** A consistent copy of the comparator's counters, taken on its thread. */
    public CompareStats stats() {
        try {
            return loop.submit(() -> comparator.stats().snapshot()).get(5, TimeUnit.SECONDS);
        } catch (Exception e) {
            throw new IllegalStateException("cannot read compare stats", e);
        }
    }

    public FrameErrors errors(Role role) {
        return errors.get(role);
    }

    public long checkpointsRequested() {
        return checkpointsRequested.sum();
    }

    public void awaitClose() throws InterruptedException {
        closed.await();
    }

    @Override
    public void close() {
        if (stopping) {
            return;
        }
        stopping = true;
        try {
            loop.submit(() -> {
                logStats();
                comparator.close();
                peers.values().forEach(Channel::close);
                listeners.values().forEach(Channel::close);
            }).get(5, TimeUnit.SECONDS);
        } catch (Exception e) {
            log.atWarn().addKeyValue("reason", String.valueOf(e)).log("unclean compare shutdown");
        }
        group.shutdownGracefully(0, 2, TimeUnit.SECONDS).syncUninterruptibly();
        for (Endpoint ep : new Endpoint[] {options.primaryIn(), options.secondaryIn(), options.outdev(), options.notifyDev()}) {
            if (ep != null && ep.unix() && ep.server()) {
                deleteQuietly(ep);
            }
        }
        closed.countDown();
    }
}
