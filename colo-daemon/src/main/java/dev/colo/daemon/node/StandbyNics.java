package dev.colo.daemon.node;

import dev.colo.checkpoint.engine.SecondaryCheckpointSink;
import dev.colo.checkpoint.link.proto.PairRequest;
import dev.colo.host.libvirt.DomainXml;
import dev.colo.hypervisor.DomainRef;
import dev.colo.hypervisor.HypervisorException;
import dev.colo.proxy.frame.Frame;
import java.util.Map;
import java.util.function.BiConsumer;

/**
 * The standbys of one pairing, as the sink asks for them: each is the PVM's definition renamed
 * ({@link DomainShaper}), with a NIC socket of its own that this factory opens and closes, and
 * with its own overlays over the pairing's disk copies ({@link SvmDisks}).
 */
final class StandbyNics implements SecondaryCheckpointSink.StandbyFactory {
    private final DomainShaper shaper;
    private final Network network;
    private final PairRequest req;
    private final String runId;
    private final Map<String, VmNic> nics;
    private final BiConsumer<String, Frame> fromVm;
    private final SvmDisks disks;

    /**
     * @param fromVm every frame a standby or SVM sends, with its domain name
     * @param disks the pairing's disk copies, each standby getting overlays of its own (null: no disks)
     */
    StandbyNics(DomainShaper shaper, Network network, PairRequest req, String runId, Map<String, VmNic> nics, BiConsumer<String, Frame> fromVm,
            SvmDisks disks) {
        this.disks = disks;
        this.shaper = shaper;
        this.network = network;
        this.req = req;
        this.runId = runId;
        this.nics = nics;
        this.fromVm = fromVm;
    }

    @Override
    public String define(long n) {
        String name = shaper.standbyName(req.getVm(), runId, n);
        VmNic nic;
        try {
            nic = network.openVmNic(name, 0, f -> fromVm.accept(name, f));
        } catch (Exception e) {
            throw new HypervisorException(HypervisorException.Kind.UNAVAILABLE, "cannot open the standby's NIC socket: " + e.getMessage(), e);
        }
        nics.put(name, nic);
        try {
            String xml = shaper.standby(req, name, nic.port());
            return disks == null ? xml : disks.standby(DomainXml.parse(xml), name).toXml();
        } catch (RuntimeException e) {
            // No domain was defined, so the sink will never retire it: its NIC and overlays go now,
            // or every retry of a failing standby would leave one more of each behind.
            retired(name);
            throw e;
        }
    }

    @Override
    public void retired(DomainRef d) {
        retired(d.name());
    }

    private void retired(String name) {
        VmNic nic = nics.remove(name);
        if (nic != null) {
            nic.close();
        }
        if (disks != null) {
            disks.retired(name);
        }
    }
}
