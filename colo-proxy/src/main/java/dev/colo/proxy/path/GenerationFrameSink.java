package dev.colo.proxy.path;

import dev.colo.proxy.frame.Frame;

/** SVM output on its way to the primary, tagged with the generation of the SVM that sent it. Ownership passes. */
@FunctionalInterface
public interface GenerationFrameSink {
    void accept(long generation, Frame frame);
}
