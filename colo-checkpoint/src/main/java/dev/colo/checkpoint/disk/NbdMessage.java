package dev.colo.checkpoint.disk;

import io.netty.buffer.ByteBuf;

/** What {@link NbdDecoder} reads from an NBD client. Whoever receives a message releases its {@link #data()}. */
sealed interface NbdMessage {
    /** The payload this message owns (empty when it has none). */
    ByteBuf data();

    /** The client's 32-bit flags, right after the server's greeting. */
    record ClientFlags(int flags, ByteBuf data) implements NbdMessage {}

    /** One option of the option haggling phase. */
    record Option(int option, ByteBuf data) implements NbdMessage {}

    /** One transmission request; {@code data} holds a write's payload. */
    record Request(int flags, int type, long handle, long offset, long length, ByteBuf data) implements NbdMessage {}

    /**
     * The client broke the protocol (bad magic, an impossible length): the connection cannot go on.
     * Emitted once; the decoder reads nothing after it.
     */
    record Violation(String what, ByteBuf data) implements NbdMessage {}
}
