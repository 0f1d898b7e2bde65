package dev.colo.proxy.path;

import dev.colo.proxy.frame.Frame;

/** A link port direction: frames tagged with the checkpoint epoch they belong to. */
@FunctionalInterface
public interface EpochFrameSink {
    void accept(long epoch, Frame frame);
}
