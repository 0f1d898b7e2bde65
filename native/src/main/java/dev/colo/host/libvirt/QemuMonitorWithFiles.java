package dev.colo.host.libvirt;

import com.sun.jna.Library;
import com.sun.jna.Native;
import com.sun.jna.Pointer;
import com.sun.jna.PointerType;
import com.sun.jna.ptr.IntByReference;
import com.sun.jna.ptr.PointerByReference;
import dev.colo.hypervisor.HypervisorException;
import java.lang.reflect.Field;
import org.libvirt.Domain;

/**
 * {@code virDomainQemuMonitorCommandWithFiles} (libvirt 8.2+), which libvirt-java 0.5.4 lacks. QEMU
 * runs as libvirt-qemu and cannot reach a root-owned socket, so device state travels over a
 * socketpair whose one end we hand to QEMU with QMP {@code getfd}.
 */
final class QemuMonitorWithFiles {
    interface LibvirtQemuFiles extends Library {
        int virDomainQemuMonitorCommandWithFiles(Pointer domain, String cmd, int ninfiles, int[] infiles,
                IntByReference noutfiles, PointerByReference outfiles, PointerByReference result, int flags);
    }

    private static final LibvirtQemuFiles LIB = Native.load("virt-qemu", LibvirtQemuFiles.class);
    private static final Field DOMAIN_POINTER;

    static {
        try {
            DOMAIN_POINTER = Domain.class.getDeclaredField("vdp");
            DOMAIN_POINTER.setAccessible(true);
        } catch (ReflectiveOperationException e) {
            throw new ExceptionInInitializerError("libvirt-java Domain has no vdp field: " + e);
        }
    }

    private QemuMonitorWithFiles() {}

    /** Sends {@code json} to the domain's monitor with {@code fds} attached; returns the raw reply. */
    static String command(Domain domain, String vm, String json, int... fds) {
        Pointer dp;
        try {
            dp = ((PointerType) DOMAIN_POINTER.get(domain)).getPointer();
        } catch (IllegalAccessException e) {
            throw new HypervisorException(HypervisorException.Kind.FAILED, "cannot reach libvirt domain pointer", e);
        }
        PointerByReference result = new PointerByReference();
        IntByReference nout = new IntByReference();
        PointerByReference outFiles = new PointerByReference();
        int rc = LIB.virDomainQemuMonitorCommandWithFiles(dp, json, fds.length, fds, nout, outFiles, result, 0);
        if (rc < 0) {
            throw LibvirtGate.lastError("QMP with files", vm);
        }
        Pointer r = result.getValue();
        try {
            return r == null ? "" : r.getString(0, "UTF-8");
        } finally {
            if (r != null) {
                Native.free(Pointer.nativeValue(r));
            }
            if (outFiles.getValue() != null) {
                Native.free(Pointer.nativeValue(outFiles.getValue()));
            }
        }
    }
}
