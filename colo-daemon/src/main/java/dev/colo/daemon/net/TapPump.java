package dev.colo.daemon.net;

import dev.colo.host.tap.TapDevice;
import dev.colo.proxy.frame.Frame;
import dev.colo.proxy.path.FrameSink;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.PooledByteBufAllocator;
import io.netty.channel.EventLoop;
import java.io.IOException;
import java.nio.ByteBuffer;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Moves frames between a tap device and a path core. Reading a tap blocks, so a dedicated thread
 * reads and hands each frame to the core's event loop; writes happen on the event loop and never
 * block for long (a tap write either fits in the device queue or is dropped by the kernel).
 */
public final class TapPump implements AutoCloseable {
    private static final Logger log = LoggerFactory.getLogger(TapPump.class);

    private final TapDevice tap;
    private final EventLoop loop;
    private final FrameSink toCore;
    private final Thread reader;
    private final ByteBuffer writeBuf = ByteBuffer.allocateDirect(TapDevice.MAX_FRAME);
    private volatile boolean running = true;
    private long writeErrors;

    public TapPump(TapDevice tap, EventLoop loop, FrameSink toCore) {
        this.tap = tap;
        this.loop = loop;
        this.toCore = toCore;
        this.reader = new Thread(this::readLoop, "colo-tap-" + tap.name());
        this.reader.setDaemon(true);
        this.reader.start();
    }

    private void readLoop() {
        ByteBuffer buf = ByteBuffer.allocateDirect(TapDevice.MAX_FRAME);
        while (running) {
            buf.clear();
            int n;
            try {
                n = tap.readFrame(buf, System.nanoTime() + 200_000_000L);
            } catch (IOException e) {
                if (running) {
                    log.atError().addKeyValue("tap", tap.name()).addKeyValue("reason", e.getMessage()).log("tap read failed, pump stopped");
                }
                return;
            }
            if (n <= 0) {
                continue;
            }
            buf.flip();
            ByteBuf copy = PooledByteBufAllocator.DEFAULT.buffer(n);
            copy.writeBytes(buf);
            Frame f = Frame.of(copy);
            try {
                loop.execute(() -> toCore.accept(f));
            } catch (RuntimeException e) {
                f.release(); // the loop is shutting down
            }
        }
    }

    /** Writes one frame to the LAN; call on the event loop. Takes ownership. */
    public void send(Frame frame) {
        try {
            ByteBuf eth = frame.ethernet();
            writeBuf.clear();
            eth.getBytes(eth.readerIndex(), writeBuf.limit(Math.min(eth.readableBytes(), writeBuf.capacity())));
            writeBuf.flip();
            tap.writeFrame(writeBuf, System.nanoTime() + 10_000_000L);
        } catch (IOException e) {
            writeErrors++;
            if (writeErrors == 1 || writeErrors % 1000 == 0) {
                log.atWarn().addKeyValue("tap", tap.name()).addKeyValue("reason", e.getMessage()).addKeyValue("errors", writeErrors)
                        .log("tap write failed, frame dropped");
            }
        } finally {
            frame.release();
        }
    }

    public String name() {
        return tap.name();
    }

    @Override
    public void close() {
        running = false;
        try {
            reader.join(1000);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
        tap.close();
    }
}
