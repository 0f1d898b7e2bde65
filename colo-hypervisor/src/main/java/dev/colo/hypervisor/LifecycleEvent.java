package dev.colo.hypervisor;

/** A lifecycle change of one domain, as reported by the hypervisor. */
public record LifecycleEvent(DomainRef domain, Kind kind, String detail) {
    public enum Kind { DEFINED, UNDEFINED, STARTED, SUSPENDED, RESUMED, STOPPED, SHUTDOWN, CRASHED, OTHER }
}
