package dev.colo.host.libvirt;

import dev.colo.hypervisor.HypervisorException;

/**
 * The single exception every libvirt error becomes: libvirt's error code, error domain and message,
 * plus the operation and the VM it concerned.
 */
public final class LibvirtFailure extends HypervisorException {
    private final String code;
    private final String errorDomain;
    private final String libvirtMessage;

    LibvirtFailure(Kind kind, String operation, String vm, String code, String errorDomain, String libvirtMessage) {
        super(kind, operation + (vm == null ? "" : " on " + vm) + " failed: " + libvirtMessage
                + " [libvirt code=" + code + " domain=" + errorDomain + "]");
        this.code = code;
        this.errorDomain = errorDomain;
        this.libvirtMessage = libvirtMessage;
    }

    /** libvirt's {@code virErrorNumber} name, e.g. {@code VIR_ERR_NO_DOMAIN}. */
    public String code() {
        return code;
    }

    /** libvirt's {@code virErrorDomain} name, e.g. {@code VIR_FROM_QEMU}. */
    public String errorDomain() {
        return errorDomain;
    }

    public String libvirtMessage() {
        return libvirtMessage;
    }
}
