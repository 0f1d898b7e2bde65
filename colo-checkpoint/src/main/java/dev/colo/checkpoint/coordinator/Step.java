package dev.colo.checkpoint.coordinator;

/** The steps of one checkpoint, in order. */
public enum Step {
    /** QMP stop on the PVM. */
    PAUSE,
    /** Find and copy dirty pages, save device state (PVM paused). */
    CAPTURE,
    /** QMP cont on the PVM. */
    RESUME,
    /** Send pages, device state and commit to the secondary. */
    SHIP,
    /** The secondary loads them into its standby and says it runs. */
    ACK
}
