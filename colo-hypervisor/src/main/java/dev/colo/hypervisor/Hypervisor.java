package dev.colo.hypervisor;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.time.Duration;
import java.util.Optional;

/**
 * What colo needs from a hypervisor. Every method blocks and may throw {@link HypervisorException};
 * none may be called from a Netty event loop.
 */
public interface Hypervisor extends AutoCloseable {

    /** Defines (or redefines) a persistent domain from libvirt XML. */
    DomainRef define(String domainXml);

    /** Starts a defined domain; {@code paused} starts it with its vCPUs stopped. */
    void start(DomainRef domain, boolean paused);

    /** Hard-stops a running domain. A domain that is not running is left alone. */
    void destroy(DomainRef domain);

    /** Removes a domain's persistent definition. */
    void undefine(DomainRef domain);

    /** Finds a domain by name or UUID. */
    Optional<DomainRef> lookup(String nameOrUuid);

    /** Finds a domain or throws {@link HypervisorException.Kind#DOMAIN_NOT_FOUND}. */
    default DomainRef require(String nameOrUuid) {
        return lookup(nameOrUuid).orElseThrow(() -> new HypervisorException(
                HypervisorException.Kind.DOMAIN_NOT_FOUND, "domain not found: " + nameOrUuid));
    }

    DomainState state(DomainRef domain);

    /** Every domain the hypervisor knows (running or only defined), e.g. to sweep leftovers. */
    java.util.List<DomainRef> list();

    /** The domain's current XML description (inactive definition when {@code inactive}). */
    String describe(DomainRef domain, boolean inactive);

    /** Registers a lifecycle listener; closing the returned handle unregisters it. */
    AutoCloseable onLifecycle(LifecycleListener listener);

    /**
     * Runs one QMP command. A QMP error becomes {@link QmpException}; no answer within
     * {@code timeout} becomes {@link HypervisorException.Kind#TIMEOUT}.
     *
     * @return the command's {@code return} member
     */
    JsonNode qmp(DomainRef domain, String command, ObjectNode arguments, Duration timeout);

    /** QMP {@code stop}: the vCPUs halt, guest RAM stops changing. */
    default void pause(DomainRef domain, Duration timeout) {
        qmp(domain, "stop", null, timeout);
    }

    /** QMP {@code cont}: works from paused and from postmigrate. */
    default void resume(DomainRef domain, Duration timeout) {
        qmp(domain, "cont", null, timeout);
    }

    /**
     * Does everything a later {@link #saveDeviceState} can do ahead of time (migration capabilities,
     * handing QEMU the stream's file descriptor), so the pause window holds only the save itself.
     * Optional: a save without it prepares inline. Call it while the domain runs.
     */
    default void prepareCheckpoint(DomainRef domain, Duration timeout) {
    }

    /**
     * Saves the device state of a paused domain whose RAM is shared, skipping the RAM itself
     * ({@code x-ignore-shared}). The domain stays paused.
     */
    DeviceState saveDeviceState(DomainRef domain, Duration timeout);

    /**
     * Loads device state into a standby that was started paused and waits with
     * {@code -incoming defer}. Its RAM file must already hold the guest's pages. The standby is
     * left paused; {@link #resume} runs it. A QEMU process can load state only once.
     */
    void loadDeviceState(DomainRef standby, DeviceState state, Duration timeout);

    /**
     * Saves the device state of a paused domain and nothing else: no RAM block of any kind (not
     * even ROMs), so only a {@link ReusableSvm} that already runs the same machine can load it. Much
     * cheaper than {@link #saveDeviceState}; the domain stays paused, its disks stay active.
     */
    DeviceState saveDevices(DomainRef domain, Duration timeout);

    /**
     * Like {@link #loadDeviceState} ({@code full} comes from {@link #saveDeviceState}), but the
     * standby becomes an SVM that takes later checkpoints in place. Unlike there, the SVM already
     * runs when this returns. A failure destroys the standby.
     */
    ReusableSvm loadReusable(DomainRef standby, DeviceState full, Duration timeout);

    /** Maps the guest RAM file of a running domain with shared file-backed memory. */
    GuestRam mapGuestRam(DomainRef domain);

    /** Virtual size in bytes of disk {@code target} (its name in the domain, e.g. "vdb") of a running domain. */
    long diskSize(DomainRef domain, String target, Duration timeout);

    /**
     * Starts mirroring disk {@code target} of a running domain into {@code to}: the whole disk is
     * copied in the background, and from the start each guest write completes only once {@code to}
     * took it too. {@link DiskMirror#progress} says when the copy is done. On QEMU: an NBD client
     * node and {@code blockdev-mirror} with {@code copy-mode=write-blocking}.
     */
    DiskMirror mirrorDisk(DomainRef domain, String target, MirrorTarget to, Duration timeout);

    /**
     * Creates an empty overlay image of {@code sizeBytes} (qcow2 on QEMU) at {@code file}, which the
     * hypervisor's guests may then open: an SVM keeps its own writes in such overlays.
     */
    void createOverlay(java.nio.file.Path file, long sizeBytes);

    /** The system user the hypervisor runs guests as: files and sockets colo hands to guests are given to it. */
    String guestUser();

    @Override
    void close();
}
