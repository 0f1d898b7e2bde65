package dev.colo.checkpoint.disk;

import io.netty.bootstrap.ServerBootstrap;
import io.netty.channel.Channel;
import io.netty.channel.ChannelInitializer;
import io.netty.channel.EventLoopGroup;
import io.netty.channel.epoll.EpollServerDomainSocketChannel;
import io.netty.channel.unix.DomainSocketAddress;
import io.netty.channel.unix.DomainSocketChannel;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.atomic.AtomicReference;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The NBD export of one mirrored disk at a Unix socket, for QEMU's mirror job to connect to. It
 * takes exactly one connection: a second one (QEMU's NBD client reconnecting after a failure) is
 * closed at once, since the writes in between would be missing from the relay. The socket file is
 * handed to QEMU's user ({@code owner}), which runs QEMU under libvirt; nobody else may connect.
 */
public final class NbdServer implements AutoCloseable {
    private static final Logger log = LoggerFactory.getLogger(NbdServer.class);

    private final Path socket;
    private final Channel server;
    private final AtomicReference<Channel> connection;

    private NbdServer(Path socket, Channel server, AtomicReference<Channel> connection) {
        this.socket = socket;
        this.server = server;
        this.connection = connection;
    }

    /** Serves {@code relay}'s disk at {@code socket}, which is replaced if it exists. */
    public static NbdServer start(Path socket, DiskRelay relay, EventLoopGroup group, String owner) throws IOException {
        Files.createDirectories(socket.getParent());
        Files.deleteIfExists(socket);
        AtomicReference<Channel> taken = new AtomicReference<>();
        Channel ch;
        try {
            ch = new ServerBootstrap().group(group).channel(EpollServerDomainSocketChannel.class)
                    .childHandler(new ChannelInitializer<DomainSocketChannel>() {
                        @Override
                        protected void initChannel(DomainSocketChannel c) {
                            if (!taken.compareAndSet(null, c)) {
                                log.atWarn().addKeyValue("disk", relay.disk()).addKeyValue("socket", socket)
                                        .log("second NBD connection refused: the mirror's first connection ended, its writes since are not here");
                                c.close();
                                return;
                            }
                            NbdDecoder decoder = new NbdDecoder();
                            c.pipeline().addLast(decoder, new NbdExportHandler(relay.disk(), relay.size(), decoder, relay));
                        }
                    }).bind(new DomainSocketAddress(socket.toFile())).sync().channel();
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IOException("interrupted while binding " + socket, e);
        } catch (RuntimeException e) {
            throw new IOException("cannot serve disk " + relay.disk() + " at " + socket + ": " + e.getMessage(), e);
        }
        try {
            Files.setOwner(socket, socket.getFileSystem().getUserPrincipalLookupService().lookupPrincipalByName(owner));
            Files.setPosixFilePermissions(socket, java.nio.file.attribute.PosixFilePermissions.fromString("rw-------"));
        } catch (IOException | RuntimeException e) {
            ch.close();
            throw new IOException("cannot hand NBD socket " + socket + " to " + owner + ": " + e.getMessage(), e);
        }
        return new NbdServer(socket, ch, taken);
    }

    public Path socket() {
        return socket;
    }

    /** Stops serving: the listening socket and the mirror's connection close. */
    @Override
    public void close() {
        server.close().syncUninterruptibly();
        Channel c = connection.get();
        if (c != null) {
            c.close().syncUninterruptibly();
        }
        try {
            Files.deleteIfExists(socket);
        } catch (IOException ignored) {
            // a stale socket file is replaced at the next start
        }
    }
}
