package dev.colo.runtime;

/** A scheduled task that can be called off. Cancelling one that already ran does nothing. */
@FunctionalInterface
public interface Cancellable {
    void cancel();

    Cancellable NONE = () -> { };
}
