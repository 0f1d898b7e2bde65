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
    public ReplicaDisk openCopy(String disk, Path file, long size) throws IOException {
        long actual = Files.size(file);
        if (actual != size) {
            throw new IOException("copy " + file + " has " + actual + " bytes, the disk " + size);
        }
        return ReplicaDisk.open(disk, file, size);
    }

    @Override
    public String readText(Path file) throws IOException {
        return Files.exists(file) ? Files.readString(file) : null;
    }

    @Override
    public void writeText(Path file, String text) throws IOException {
        Path tmp = file.resolveSibling(file.getFileName() + ".tmp");
        try (java.nio.channels.FileChannel c = java.nio.channels.FileChannel.open(tmp, java.nio.file.StandardOpenOption.CREATE,
                java.nio.file.StandardOpenOption.WRITE, java.nio.file.StandardOpenOption.TRUNCATE_EXISTING)) {
            c.write(java.nio.ByteBuffer.wrap(text.getBytes(java.nio.charset.StandardCharsets.UTF_8)));
            c.force(true);
        }
        Files.move(tmp, file, java.nio.file.StandardCopyOption.ATOMIC_MOVE, java.nio.file.StandardCopyOption.REPLACE_EXISTING);
    }

    @Override
    public java.util.List<Path> list(Path dir) throws IOException {
        if (!Files.isDirectory(dir)) {
            return java.util.List.of();
        }
        try (var s = Files.list(dir)) {
            return s.toList();
        }
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
    public long imageSize(Path file, String format) throws IOException {
        // -U: the running VM holds the image's write lock; reading its header needs no lock.
        dev.colo.host.posix.Command.Result r = dev.colo.host.posix.Command.run(java.time.Duration.ofSeconds(30), "qemu-img", "info", "-U",
                "--output=json", "-f", format.isEmpty() ? "raw" : format, file.toString());
        if (!r.ok()) {
            throw new IOException("qemu-img cannot read " + file + ": " + r.err().trim());
        }
        java.util.regex.Matcher m = java.util.regex.Pattern.compile("\"virtual-size\":\\s*(\\d+)").matcher(r.out());
        if (!m.find()) {
            throw new IOException("qemu-img info of " + file + " names no virtual size");
        }
        return Long.parseLong(m.group(1));
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
