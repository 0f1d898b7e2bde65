package dev.colo.daemon.node;

import dev.colo.proxy.frame.Frame;

/** The daemon's end of one VM's NIC (QEMU's socket netdev connects to it). */
public interface VmNic extends AutoCloseable {
    /** The local port the VM's NIC connects to. */
    int port();

    /** Writes a frame into the VM (on the path lane); without a connected VM it is dropped and counted. */
    void send(Frame frame);

    boolean connected();

    /**
     * How many of the frames written lately the VM has not read yet, asked right after the VM
     * paused; -1 when the NIC cannot tell.
     */
    int unreadFrames();

    /** Waits (at most {@code maxNs}) for the VM to read what was written to it; called off the path lane. */
    default void drain(long maxNs) {
    }

    @Override
    void close();
}
