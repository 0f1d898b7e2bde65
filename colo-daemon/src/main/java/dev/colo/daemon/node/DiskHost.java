package dev.colo.daemon.node;

import dev.colo.checkpoint.disk.DiskRelay;
import dev.colo.checkpoint.disk.ReplicaDisk;
import java.io.IOException;
import java.nio.file.Path;

/**
 * The host's side of disk replication, as a port: the NBD sockets QEMU's mirrors write into (on
 * the primary) and the secondary's copies of the disks with their directory. {@link HostDisks}
 * does it with real sockets and files.
 */
public interface DiskHost {
    /** Serves {@code relay}'s disk as an NBD export at {@code socket}, which only {@code user} (QEMU's) may open. */
    AutoCloseable serveNbd(Path socket, DiskRelay relay, String user) throws IOException;

    /** Creates the secondary's copy of disk {@code disk}: {@code size} zero bytes at {@code file}, given to {@code user}. */
    ReplicaDisk createCopy(String disk, Path file, long size, String user) throws IOException;

    /** Opens an existing copy at {@code file}, which must be {@code size} bytes, without changing it. */
    ReplicaDisk openCopy(String disk, Path file, long size) throws IOException;

    /** The text in {@code file}, or null when there is none. */
    String readText(Path file) throws IOException;

    /** Replaces {@code file} with {@code text}, atomically and durably. */
    void writeText(Path file, String text) throws IOException;

    /** The files in {@code dir} (empty when it does not exist). */
    java.util.List<Path> list(Path dir) throws IOException;

    /** Makes {@code dir} (and its parents): root's, searchable by QEMU's user, not listable by others. */
    void createDirectory(Path dir) throws IOException;

    /** Bytes new files in {@code dir} may still take. */
    long usableSpace(Path dir) throws IOException;

    /** The virtual size of the disk image at {@code file} in {@code format} (raw, qcow2), read without its VM. */
    long imageSize(Path file, String format) throws IOException;

    /** Whether a disk image is at {@code file}. */
    boolean exists(Path file);

    /** Removes {@code file}; a missing one is fine. */
    void delete(Path file);
}
