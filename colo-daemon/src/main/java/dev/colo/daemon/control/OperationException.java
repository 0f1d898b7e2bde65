package dev.colo.daemon.control;

/** An operator request that cannot be done; the message says why and what to do instead. */
public final class OperationException extends Exception {
    public OperationException(String message) {
        super(message);
    }
}
