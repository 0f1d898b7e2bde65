package dev.colo.daemon.node;

import dev.colo.checkpoint.disk.DiskRelay;
import dev.colo.checkpoint.disk.NbdServer;
import dev.colo.checkpoint.disk.ReplicaDisk;
import io.netty.channel.EventLoopGroup;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/** {@link DiskHost} on this host: NBD exports on an event loop of their own, copies as sparse raw files. */
final class HostDisks implements DiskHost {
    private static final Logger log = LoggerFactory.getLogger(HostDisks.class);

    private final EventLoopGroup group;

    HostDisks(EventLoopGroup group) {
        this.group = group;
    }

    @Override
    public AutoCloseable serveNbd(Path socket, DiskRelay relay, String user) throws IOException {
        createDirectory(socket.getParent());
        return NbdServer.start(socket, relay, group, user);
    }

    @Override
    public ReplicaDisk createCopy(String disk, Path file, long size, String user) throws IOException {
        ReplicaDisk d = ReplicaDisk.create(disk, file, size);
        try {
            Files.setOwner(file, file.getFileSystem().getUserPrincipalLookupService().lookupPrincipalByName(user));
            Files.setPosixFilePermissions(file, PosixFilePermissions.fromString("rw-------"));
        } catch (IOException e) {
            d.close();
            throw new IOException("cannot give disk copy " + file + " to " + user + ": " + e.getMessage(), e);
        }
        return d;
    }

    @Override
    public void createDirectory(Path dir) throws IOException {
        Files.createDirectories(dir);
        Files.setPosixFilePermissions(dir, PosixFilePermissions.fromString("rwx--x--x"));
    }

    @Override
    public long usableSpace(Path dir) throws IOException {
        return Files.getFileStore(dir).getUsableSpace();
    }

    @Override
    public boolean exists(Path file) {
        return Files.exists(file);
    }

    @Override
    public void delete(Path file) {
        try {
            Files.deleteIfExists(file);
        } catch (IOException e) {
            log.atWarn().addKeyValue("file", file).addKeyValue("reason", e.getMessage()).log("cannot remove a disk file colo made");
        }
    }
}
