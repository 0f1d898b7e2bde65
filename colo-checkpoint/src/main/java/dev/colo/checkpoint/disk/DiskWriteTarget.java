package dev.colo.checkpoint.disk;

import io.netty.buffer.ByteBuf;

/**
 * Where the writes of a mirrored disk go (the relay on the primary). Called on the NBD
 * connection's event loop; nothing here may block. A write returns 0 once the bytes are held
 * (the guest's write may then complete), or an NBD error number.
 */
interface DiskWriteTarget {
    /** {@code data} is the caller's: copy what must be kept. */
    int write(long offset, ByteBuf data);

    /** Zeroes (or discards, which colo treats alike) {@code length} bytes at {@code offset}. */
    int writeZeroes(long offset, long length);

    /** The guest flushed: every write before it is held. */
    int flush();

    /** False while the target cannot take more (the link is behind): the connection stops reading. */
    boolean writable();

    /** The connection is over; {@code why} for the log. */
    void disconnected(String why);
}
