package dev.colo.checkpoint.disk;

import dev.colo.checkpoint.engine.DiskEpochs;
import dev.colo.checkpoint.link.proto.DiskWrites;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/** The relays of every replicated disk of one PVM, cut and acknowledged together. */
public final class DiskRelays implements DiskEpochs {
    private final List<DiskRelay> relays;
    private final int maxBatchBytes;

    public DiskRelays(List<DiskRelay> relays, int maxBatchBytes) {
        this.relays = List.copyOf(relays);
        this.maxBatchBytes = maxBatchBytes;
    }

    public List<DiskRelay> relays() {
        return relays;
    }

    @Override
    public void pausing(long seq) {
        for (DiskRelay r : relays) {
            r.pausing();
        }
    }

    @Override
    public void cut(long seq) {
        for (DiskRelay r : relays) {
            r.cut(seq);
        }
    }

    @Override
    public List<DiskWrites> batches(long seq) {
        List<DiskWrites> out = new ArrayList<>();
        for (DiskRelay r : relays) {
            out.addAll(r.batches(seq, out.size(), maxBatchBytes));
        }
        return out;
    }

    @Override
    public void acknowledged(long seq) {
        for (DiskRelay r : relays) {
            r.acknowledged(seq);
        }
    }

    @Override
    public Map<String, Long> copyBatches(long seq) {
        Map<String, Long> out = new HashMap<>();
        for (DiskRelay r : relays) {
            r.copyBatchesToConfirm(seq).ifPresent(n -> out.put(r.disk(), n));
        }
        return out;
    }

    /** Data bytes the relays hold for checkpoints not yet acknowledged. */
    public long heldBytes() {
        long n = 0;
        for (DiskRelay r : relays) {
            n += r.heldBytes();
        }
        return n;
    }
}
