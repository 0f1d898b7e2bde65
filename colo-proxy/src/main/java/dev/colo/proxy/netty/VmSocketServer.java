package dev.colo.proxy.netty;

import dev.colo.proxy.frame.Frame;
import dev.colo.proxy.frame.FrameDecoder;
import dev.colo.proxy.frame.FrameEncoder;
import dev.colo.proxy.frame.FrameErrors;
import dev.colo.proxy.path.FrameSink;
import io.netty.bootstrap.ServerBootstrap;
import io.netty.channel.Channel;
import io.netty.channel.ChannelFactory;
import io.netty.channel.ChannelHandlerContext;
import io.netty.channel.ChannelInitializer;
import io.netty.channel.ChannelOption;
import io.netty.channel.EventLoop;
import io.netty.channel.ServerChannel;
import io.netty.channel.SimpleChannelInboundHandler;
import io.netty.channel.WriteBufferWaterMark;
import io.netty.channel.epoll.EpollServerSocketChannel;
import java.net.InetSocketAddress;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The daemon's end of a VM's NIC: QEMU's {@code -netdev socket,connect=HOST:PORT} (libvirt
 * {@code <interface type='client'>}) connects here. One VM connection at a time; frames from the VM
 * go to {@code fromVm} on {@code loop}, {@link #send} writes frames into the VM. Everything runs on
 * the given event loop, the same one as the path core it feeds.
 */
public final class VmSocketServer implements AutoCloseable {
    private static final Logger log = LoggerFactory.getLogger(VmSocketServer.class);

    private final String vm;
    private final EventLoop loop;
    private final FrameSink fromVm;
    private final FrameErrors errors = new FrameErrors();
    private final Channel listener;
    private Channel peer;
    private boolean dirty;
    private long droppedNoVm;
    private volatile SocketQueues queues;
    /** Wire sizes of the last frames written, newest last, to turn queued bytes into frames. */
    private final int[] recentSizes = new int[256];
    private int recentCount;
    private int recentNext;

    public VmSocketServer(String vm, EventLoop loop, InetSocketAddress bind, FrameSink fromVm) throws InterruptedException {
        this(vm, loop, bind, fromVm, EpollServerSocketChannel::new);
    }

    /**
     * @param channels makes the listening socket; a daemon whose QEMU runs in another network
     *     namespace creates it there (a socket stays in the namespace it was made in)
     */
    public VmSocketServer(String vm, EventLoop loop, InetSocketAddress bind, FrameSink fromVm,
            ChannelFactory<? extends ServerChannel> channels) throws InterruptedException {
        this.vm = vm;
        this.loop = loop;
        this.fromVm = fromVm;
        this.listener = new ServerBootstrap().group(loop).channelFactory(channels)
                .option(ChannelOption.SO_REUSEADDR, true)
                .childOption(ChannelOption.TCP_NODELAY, true)
                .childOption(ChannelOption.WRITE_BUFFER_WATER_MARK, new WriteBufferWaterMark(1 << 20, 4 << 20))
                .childHandler(new ChannelInitializer<Channel>() {
                    @Override
                    protected void initChannel(Channel ch) {
                        ch.pipeline().addLast(new FrameDecoder(false, FrameDecoder.DEFAULT_MAX_FRAME, errors, "vm " + vm));
                        ch.pipeline().addLast(new FrameEncoder(false));
                        ch.pipeline().addLast(new Handler());
                    }
                }).bind(bind).sync().channel();
    }

    public int port() {
        return ((InetSocketAddress) listener.localAddress()).getPort();
    }

    /** Writes a frame into the VM (on the loop); without a connected VM it is dropped and counted. */
    public void send(Frame frame) {
        if (peer == null || !peer.isActive()) {
            droppedNoVm++;
            frame.release();
            return;
        }
        recentSizes[recentNext] = 4 + frame.length();
        recentNext = (recentNext + 1) % recentSizes.length;
        recentCount = Math.min(recentCount + 1, recentSizes.length);
        peer.write(frame, peer.voidPromise());
        if (!dirty) {
            dirty = true;
            loop.execute(this::flush);
        }
    }

    private void flush() {
        dirty = false;
        if (peer != null) {
            peer.flush();
        }
    }

    public boolean connected() {
        return peer != null && peer.isActive();
    }

    /**
     * Lets {@link #unreadBytes()} read the kernel's socket queues; {@code queues} must have been
     * opened in the namespace of the listening socket.
     */
    public void watchQueues(SocketQueues q) {
        this.queues = q;
    }

    /**
     * Bytes written to the VM that it has not read yet: Netty's unflushed writes plus both kernel
     * queues of the connection. -1 when unknown. Any thread.
     */
    public long unreadBytes() {
        Channel p = peer;
        SocketQueues q = queues;
        if (p == null || q == null || !p.isActive()) {
            return -1;
        }
        long kernel = q.queued((InetSocketAddress) p.localAddress(), (InetSocketAddress) p.remoteAddress());
        if (kernel < 0) {
            return -1;
        }
        var out = p.unsafe().outboundBuffer();
        return kernel + (out == null ? 0 : out.totalPendingWriteBytes());
    }

    /** How many of the latest frames written make up {@link #unreadBytes()}; -1 when unknown. On the loop. */
    public int unreadFrames() {
        long bytes = unreadBytes();
        if (bytes < 0) {
            return -1;
        }
        int n = 0;
        long sum = 0;
        int i = recentNext;
        while (sum < bytes && n < recentCount) {
            i = (i - 1 + recentSizes.length) % recentSizes.length;
            sum += recentSizes[i];
            n++;
        }
        return n;
    }

    public long droppedNoVm() {
        return droppedNoVm;
    }

    public FrameErrors errors() {
        return errors;
    }

    private final class Handler extends SimpleChannelInboundHandler<Frame> {
        Handler() {
            super(Frame.class, false);
        }

        @Override
        public void channelActive(ChannelHandlerContext ctx) {
            if (peer != null && peer.isActive()) {
                log.atWarn().addKeyValue("vm", vm).addKeyValue("peer", ctx.channel().remoteAddress())
                        .log("second VM connection refused; one VM per NIC socket");
                ctx.close();
                return;
            }
            peer = ctx.channel();
            log.atInfo().addKeyValue("vm", vm).addKeyValue("peer", ctx.channel().remoteAddress()).log("VM NIC connected");
        }

        @Override
        public void channelInactive(ChannelHandlerContext ctx) {
            if (peer == ctx.channel()) {
                peer = null;
                log.atInfo().addKeyValue("vm", vm).log("VM NIC disconnected");
            }
        }

        @Override
        protected void channelRead0(ChannelHandlerContext ctx, Frame frame) {
            fromVm.accept(frame);
        }

        @Override
        public void exceptionCaught(ChannelHandlerContext ctx, Throwable cause) {
            log.atWarn().addKeyValue("vm", vm).addKeyValue("reason", String.valueOf(cause)).log("VM NIC socket error, closing it");
            ctx.close();
        }
    }

    @Override
    public void close() {
        SocketQueues q = queues;
        if (q != null) {
            q.close();
        }
        try {
            loop.submit(() -> {
                if (peer != null) {
                    peer.close();
                }
                listener.close();
            }).syncUninterruptibly();
        } catch (RuntimeException e) {
            listener.close();
        }
    }
}
