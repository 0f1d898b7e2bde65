package dev.colo.proxy.compare;

import dev.colo.proxy.frame.Frame;

/** Where the comparator's decisions go. Called on the comparator's own thread. */
public interface CompareSink {
    /** A primary frame may leave; ownership passes to the sink. */
    void release(Frame primary);

    /** A checkpoint is needed. The comparator keeps holding primary output until one commits. */
    void checkpoint(CheckpointRequest request);
}
