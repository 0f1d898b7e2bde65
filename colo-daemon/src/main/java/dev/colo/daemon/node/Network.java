package dev.colo.daemon.node;

import dev.colo.proxy.frame.Frame;
import dev.colo.proxy.path.FrameSink;

/**
 * Where a node's frames come from and go to: the LAN side (the tap on the host bridge) and the
 * VMs' NICs. Every callback runs on the node's path lane. Production: {@link HostNetwork}; the pair
 * simulation: a simulated LAN and NICs.
 */
public interface Network {
    /** The LAN side of the protected VM. */
    interface Lan extends AutoCloseable {
        /** Sends one frame to the LAN (ownership passes). */
        void send(Frame frame);

        String name();

        @Override
        void close();
    }

    /** Opens the LAN side; frames from the LAN go to {@code fromLan}. */
    Lan openLan(FrameSink fromLan) throws Exception;

    /**
     * Opens a VM NIC socket for domain {@code owner} on {@code port} (0: any free port); frames
     * the VM sends go to {@code fromVm}.
     */
    VmNic openVmNic(String owner, int port, FrameSink fromVm) throws Exception;
}
