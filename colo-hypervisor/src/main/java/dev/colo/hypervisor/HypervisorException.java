package dev.colo.hypervisor;

/**
 * Every failure of the hypervisor port. {@link Kind} says what went wrong in terms the caller can
 * act on; the message says it in terms an operator can read.
 */
public class HypervisorException extends RuntimeException {

    public enum Kind {
        /** No domain with that name or UUID. */
        DOMAIN_NOT_FOUND,
        /** The hypervisor (libvirtd) is down, restarting or unreachable. */
        UNAVAILABLE,
        /** The domain is in a state where the operation cannot run. */
        INVALID_STATE,
        /** The domain's definition cannot be protected, e.g. its RAM is not shared. */
        UNSUPPORTED_DOMAIN,
        /** The QEMU monitor answered with an error. */
        QMP_ERROR,
        /** No answer within the caller's timeout. */
        TIMEOUT,
        /** A device-state stream broke off or was refused. */
        STREAM,
        /** Anything else the hypervisor reported. */
        FAILED
    }

    private final Kind kind;

    public HypervisorException(Kind kind, String message) {
        super(message);
        this.kind = kind;
    }

    public HypervisorException(Kind kind, String message, Throwable cause) {
        super(message, cause);
        this.kind = kind;
    }

    public Kind kind() {
        return kind;
    }
}
