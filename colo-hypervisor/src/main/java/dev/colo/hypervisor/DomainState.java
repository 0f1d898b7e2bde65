package dev.colo.hypervisor;

/** Run state of a domain, as colo cares about it. */
public enum DomainState {
    RUNNING,
    PAUSED,
    SHUTOFF,
    CRASHED,
    /** Shutting down, suspended to disk, blocked or a state the hypervisor did not name. */
    OTHER;

    public boolean isActive() {
        return this == RUNNING || this == PAUSED;
    }
}
