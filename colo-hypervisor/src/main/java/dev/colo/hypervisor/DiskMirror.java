package dev.colo.hypervisor;

import java.time.Duration;

/**
 * One disk of a running domain being mirrored into colo ({@link Hypervisor#mirrorDisk}): a copy of
 * the whole disk in the background, and every guest write synchronously from the start. Blocking,
 * like the port.
 */
public interface DiskMirror extends AutoCloseable {
    /**
     * How far the copy is. {@code ready}: the whole disk is copied and every write from now on
     * reaches colo before the guest sees it complete. {@code error}: the mirror stopped (null while
     * it runs).
     */
    record Progress(long doneBytes, long totalBytes, boolean ready, String error) {}

    /** The disk's target name in the domain, e.g. "vdb". */
    String target();

    Progress progress(Duration timeout);

    /** Stops mirroring; the guest's own disk is untouched. Idempotent; failures are logged, not thrown. */
    @Override
    void close();
}
