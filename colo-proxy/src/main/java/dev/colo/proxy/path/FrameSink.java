package dev.colo.proxy.path;

import dev.colo.proxy.frame.Frame;

/** Where a path sends a frame; ownership passes with it. */
@FunctionalInterface
public interface FrameSink {
    void accept(Frame frame);
}
