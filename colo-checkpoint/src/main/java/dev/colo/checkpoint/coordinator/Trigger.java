package dev.colo.checkpoint.coordinator;

/** Why a checkpoint starts. */
public enum Trigger {
    /** The proxy saw the VMs' output differ. */
    DIVERGENCE,
    /** Held output aged past the compare timeout. */
    AGEING,
    /** No checkpoint for the configured maximum interval. */
    MAX_INTERVAL,
    /** An operator or the daemon asked. */
    ON_DEMAND,
    /** The PVM wrote more to its disks since the last checkpoint than the primary keeps at ease. */
    DISK_LOG,
    /** The first checkpoint of a pair, or the one after an abort: full. */
    RESYNC,
    /** A planned switchover: the last checkpoint of this primary; the PVM is not resumed. */
    SWITCHOVER
}
