package dev.colo.hypervisor;

import java.nio.file.Path;

/**
 * Where a {@link DiskMirror} delivers the disk's writes. On QEMU it is an NBD export that colo
 * serves at a Unix socket the hypervisor's user may connect to; a hypervisor that keeps its disks
 * in memory (the simulation) calls {@link #write} for each write its guest completes instead.
 */
public interface MirrorTarget {
    /** The Unix socket of the NBD export (its export name is the disk's target name). */
    Path nbdSocket();

    /** One write the guest completed: {@code data} null means {@code length} zeroes. */
    default void write(long offset, long length, byte[] data) {
        throw new UnsupportedOperationException("this mirror target takes writes over NBD at " + nbdSocket());
    }
}
