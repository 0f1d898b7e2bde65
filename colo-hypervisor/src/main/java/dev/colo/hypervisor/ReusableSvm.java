package dev.colo.hypervisor;

import java.time.Duration;

/**
 * An SVM that takes checkpoints in place: one QEMU process is stopped, brought to a checkpoint
 * (its RAM rewritten by the caller, its devices loaded from {@link Hypervisor#saveDevices} output)
 * and run again, instead of a fresh standby per checkpoint. On QEMU this is its COLO secondary
 * mode, with colo as the migration source speaking QEMU's COLO messages. Any failure leaves the
 * process in an unknown state: the caller destroys the domain (the fresh-standby path remains).
 * Not thread-safe: one caller at a time.
 */
public interface ReusableSvm extends AutoCloseable {
    DomainRef domain();

    /** Stops the SVM's vCPUs for a checkpoint; when this returns its RAM may be rewritten. */
    void stop(Duration timeout);

    /**
     * Loads devices-only state ({@link Hypervisor#saveDevices}) into the stopped SVM, whose RAM
     * the caller has already brought to the same checkpoint, and runs it. QEMU runs it itself.
     */
    void load(DeviceState devices, Duration timeout);

    /**
     * Failover: the SVM leaves the checkpoint channel and runs on as an ordinary VM. Idempotent;
     * after it, {@link #stop} and {@link #load} fail.
     */
    void release(Duration timeout);

    /** Drops the channel without a failover (the domain is being destroyed). */
    @Override
    void close();
}
