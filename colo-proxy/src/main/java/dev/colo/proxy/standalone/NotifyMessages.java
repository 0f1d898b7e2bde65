package dev.colo.proxy.standalone;

/** The Xen-style text messages on notify_dev, each sent in the same be32 length framing. */
public final class NotifyMessages {
    /** The checkpointer says hello. */
    public static final String PROXY_INIT = "COLO_USERSPACE_PROXY_INIT";
    /** Our answer to the hello. */
    public static final String COMPARE_INIT = "COLO_COMPARE_GET_XEN_INIT";
    /** We need a checkpoint. */
    public static final String DO_CHECKPOINT = "DO_CHECKPOINT";
    /** The checkpoint is done: release held primary output, drop secondary output. */
    public static final String CHECKPOINT_DONE = "COLO_CHECKPOINT";

    private NotifyMessages() {}
}
