package dev.colo.host.libvirt;

import dev.colo.hypervisor.HypervisorException.Kind;
import org.libvirt.Connect;
import org.libvirt.Error;
import org.libvirt.LibvirtException;
import org.libvirt.jna.Libvirt;
import org.libvirt.jna.virError;

/**
 * The one error gate around every libvirt call. It also silences libvirt's default error printer,
 * which would otherwise write every error to stderr behind our back.
 */
final class LibvirtGate {
    interface Call<T> {
        T run() throws LibvirtException;
    }

    interface VoidCall {
        void run() throws LibvirtException;
    }

    /** Held strongly: libvirt keeps only a native pointer to it. */
    private static final Libvirt.VirErrorCallback SILENT = (userData, error) -> { };
    private static volatile boolean silenced;

    private LibvirtGate() {}

    static synchronized void silenceStderr() {
        if (!silenced) {
            try {
                Connect.setErrorCallback(SILENT);
            } catch (LibvirtException e) {
                throw translate("silence libvirt error printer", null, e);
            }
            silenced = true;
        }
    }

    static <T> T call(String operation, String vm, Call<T> call) {
        try {
            return call.run();
        } catch (LibvirtException e) {
            throw translate(operation, vm, e);
        }
    }

    static void run(String operation, String vm, VoidCall call) {
        try {
            call.run();
        } catch (LibvirtException e) {
            throw translate(operation, vm, e);
        }
    }

    static LibvirtFailure translate(String operation, String vm, LibvirtException e) {
        Error err = e.getError();
        String code = err == null || err.getCode() == null ? "UNKNOWN" : err.getCode().name();
        String domain = err == null || err.getDomain() == null ? "UNKNOWN" : err.getDomain().name();
        String message = err == null ? e.getMessage() : err.getMessage();
        return new LibvirtFailure(kindOf(code, domain), operation, vm, code, domain, message);
    }

    /** The calling thread's last libvirt error, for calls made through our own JNA bindings. */
    static LibvirtFailure lastError(String operation, String vm) {
        virError v = Libvirt.INSTANCE.virGetLastError();
        if (v == null) {
            return new LibvirtFailure(Kind.FAILED, operation, vm, "UNKNOWN", "UNKNOWN", "libvirt reported no error details");
        }
        Error err = new Error(v);
        return new LibvirtFailure(kindOf(err.getCode().name(), err.getDomain().name()), operation, vm,
                err.getCode().name(), err.getDomain().name(), err.getMessage());
    }

    static Kind kindOf(String code, String domain) {
        switch (code) {
            case "VIR_ERR_NO_DOMAIN":
                return Kind.DOMAIN_NOT_FOUND;
            case "VIR_ERR_NO_CONNECT":
            case "VIR_ERR_SYSTEM_ERROR":
            case "VIR_ERR_RPC":
            case "VIR_ERR_AUTH_FAILED":
            case "VIR_ERR_AUTH_UNAVAILABLE":
                return Kind.UNAVAILABLE;
            case "VIR_ERR_OPERATION_INVALID":
                return Kind.INVALID_STATE;
            case "VIR_ERR_OPERATION_TIMEOUT":
            case "VIR_ERR_AGENT_UNRESPONSIVE":
                return Kind.TIMEOUT;
            default:
                // A closed client socket while libvirtd restarts arrives as an internal RPC error.
                return "VIR_FROM_RPC".equals(domain) ? Kind.UNAVAILABLE : Kind.FAILED;
        }
    }
}
