package dev.colo.hypervisor;

import java.util.Objects;

/** A domain by its identity; cheap to copy, safe to keep across hypervisor reconnects. */
public record DomainRef(String name, String uuid) {
    public DomainRef {
        Objects.requireNonNull(name, "name");
        Objects.requireNonNull(uuid, "uuid");
    }

    @Override
    public String toString() {
        return name + "(" + uuid + ")";
    }
}
