package dev.colo.proxy.path;

import dev.colo.proxy.frame.Frame;

/**
 * Client frames on their way to the secondary, tagged with the PVM segment that reads them: every
 * SVM of a generation up to {@code segment} needs them. {@code nextSvmOnly}: only the SVM being
 * built from checkpoint {@code segment} (the running SVM already has them). Ownership passes.
 */
@FunctionalInterface
public interface IngressSink {
    void accept(long segment, boolean nextSvmOnly, Frame frame);
}
