package dev.colo.host.lab;

import dev.colo.host.libvirt.DomainXml;
import dev.colo.host.libvirt.LibvirtHypervisor;
import dev.colo.host.libvirt.MappedGuestRam;
import dev.colo.hypervisor.DeviceState;
import dev.colo.hypervisor.DomainRef;
import dev.colo.hypervisor.GuestRam;
import dev.colo.hypervisor.HypervisorException;
import dev.colo.lab.Lab;
import dev.colo.lab.LabLan;
import dev.colo.lab.TestGuest;
import java.nio.ByteBuffer;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;

/**
 * The checkpoint primitive on real QEMU, for the integration test and the benchmark: a PVM on LAN A
 * and a hot standby on LAN B (same addresses, same client MAC). One round pauses the PVM, copies its
 * whole RAM into the standby's RAM file, saves device state, resumes the PVM, then loads the state
 * into the standby and runs it. Dirty-page tracking is the engine's job; this copies everything.
 */
final class PrimitiveRig implements AutoCloseable {
    static final Duration QMP = Duration.ofSeconds(10);

    /** Figures of one round. */
    record Round(long pausedNs, long copyNs, long saveNs, int deviceBytes, long loadNs, long standbyReadyNs) {}

    private final LibvirtHypervisor hv;
    private final int memoryMiB;
    private final String tag;
    private final LabLan lanA;
    private final LabLan lanB;
    private final List<String> hostTaps = new ArrayList<>();
    private final String pvmXml;
    private DomainRef pvm;
    private DomainRef standby;
    /** Mappings stay open across rounds, as the engine keeps them: page tables are per mapping. */
    private GuestRam pvmRam;
    private GuestRam standbyRam;
    private String standbyTap;
    private int standbySeq;

    PrimitiveRig(LibvirtHypervisor hv, String tag, int memoryMiB) {
        this.hv = hv;
        this.tag = tag;
        this.memoryMiB = memoryMiB;
        Lab.sweepStaleDomains("colo-it-" + tag);
        this.lanA = LabLan.create(tag + "a");
        LabLan b = null;
        try {
            b = LabLan.create(tag + "b");
        } catch (RuntimeException e) {
            lanA.close();
            throw e;
        }
        this.lanB = b;
        String tap = newTap();
        this.pvmXml = TestGuest.locate().domainXml("colo-it-" + tag + "-pvm-" + ProcessHandle.current().pid(), memoryMiB,
                LabLan.GUEST_CIDR, TestGuest.tapNic(tap, LabLan.GUEST_MAC), true, null);
        pvm = hv.define(pvmXml);
        hv.start(pvm, false);
        lanA.plug(tap);
    }

    private String newTap() {
        String t = LabLan.newHostTap();
        hostTaps.add(t);
        return t;
    }

    LabLan lanA() {
        return lanA;
    }

    LabLan lanB() {
        return lanB;
    }

    DomainRef pvm() {
        return pvm;
    }

    /** Starts the next hot standby: paused, waiting with -incoming defer, its tap on LAN B. */
    void prepareStandby() {
        standbyTap = newTap();
        String xml = DomainXml.parse(pvmXml)
                .withName("colo-it-" + tag + "-svm-" + ProcessHandle.current().pid() + "-" + (++standbySeq))
                .withUuid(LibvirtHypervisor.newUuid())
                .asIncomingStandby()
                .toXml()
                .replace(hostTaps.get(0), standbyTap);
        standby = hv.define(xml);
        hv.start(standby, true);
        lanB.plug(standbyTap);
        standbyRam = hv.mapGuestRam(standby);
        ((MappedGuestRam) standbyRam).prefault();
    }

    /** One checkpoint round; the standby must have been prepared. */
    Round checkpoint() {
        if (pvmRam == null) {
            pvmRam = hv.mapGuestRam(pvm);
            ((MappedGuestRam) pvmRam).prefault();
        }
        hv.prepareCheckpoint(pvm, QMP);
        GuestRam src = pvmRam;
        GuestRam dst = standbyRam;
        {
            hv.pause(pvm, QMP);
            long tPaused = System.nanoTime();
            copy(src, dst);
            long tCopied = System.nanoTime();
            DeviceState state = hv.saveDeviceState(pvm, QMP);
            long tSaved = System.nanoTime();
            hv.resume(pvm, QMP);
            long tResumed = System.nanoTime();
            hv.loadDeviceState(standby, state, QMP);
            long tLoaded = System.nanoTime();
            hv.resume(standby, QMP);
            long tRunning = System.nanoTime();
            return new Round(tResumed - tPaused, tCopied - tPaused, tSaved - tCopied, state.size(),
                    tLoaded - tResumed, tRunning - tResumed);
        }
    }

    private static void copy(GuestRam src, GuestRam dst) {
        int chunk = 1 << 20;
        ByteBuffer buf = ByteBuffer.allocateDirect(chunk);
        for (long off = 0; off < src.size(); off += chunk) {
            buf.clear().limit((int) Math.min(chunk, src.size() - off));
            src.read(off, buf);
            buf.flip();
            dst.write(off, buf);
        }
    }

    /** Retires the current standby. */
    void retireStandby() {
        if (standbyRam != null) {
            standbyRam.close();
            standbyRam = null;
        }
        if (standby != null) {
            quietly(() -> hv.destroy(standby));
            quietly(() -> hv.undefine(standby));
            standby = null;
        }
        if (standbyTap != null) {
            lanB.unplug(standbyTap);
            hostTaps.remove(standbyTap);
            standbyTap = null;
        }
    }

    private static void quietly(Runnable r) {
        try {
            r.run();
        } catch (HypervisorException e) {
            System.err.println("cleanup: " + e.getMessage());
        }
    }

    @Override
    public void close() {
        retireStandby();
        if (pvmRam != null) {
            pvmRam.close();
        }
        if (pvm != null) {
            DomainRef p = pvm;
            quietly(() -> hv.destroy(p));
            quietly(() -> hv.undefine(p));
        }
        lanA.close();
        lanB.close();
        for (String t : hostTaps) {
            LabLan.deleteHostTap(t);
        }
        Lab.sweepStaleDomains("colo-it-" + tag);
    }
}
