package dev.colo.checkpoint.engine;

import dev.colo.checkpoint.link.proto.DiskWrites;
import java.util.List;
import java.util.Map;

/**
 * The PVM's replicated disks as the primary engine sees them: cut at each pause, shipped with the
 * checkpoint, dropped once acknowledged ({@link dev.colo.checkpoint.disk.DiskRelay} per disk).
 */
public interface DiskEpochs {
    /** A VM without writable disks. */
    DiskEpochs NONE = new DiskEpochs() {
        @Override
        public void pausing(long seq) {
        }

        @Override
        public void cut(long seq) {
        }

        @Override
        public List<DiskWrites> batches(long seq) {
            return List.of();
        }

        @Override
        public void acknowledged(long seq) {
        }

        @Override
        public Map<String, Long> copyBatches(long seq) {
            return Map.of();
        }
    };

    /**
     * Checkpoint {@code seq} is about to pause the PVM. QMP {@code stop} waits for the guest's
     * writes in flight, and those are waiting for the relays: from now until the cut the relays take
     * every write, even past their limit, or the pause would never end.
     */
    void pausing(long seq);

    /** The PVM is paused for checkpoint {@code seq} (its I/O drained): close epoch {@code seq}. Throws when a disk stopped following. */
    void cut(long seq);

    /** Every epoch checkpoint {@code seq} must carry, as numbered batches (0 ..). */
    List<DiskWrites> batches(long seq);

    /** The secondary runs checkpoint {@code seq}. */
    void acknowledged(long seq);

    /**
     * Per disk whose copy made while pairing has ended but is not yet confirmed by an acknowledged
     * checkpoint: how many copy batches were sent (the secondary checks it wrote as many).
     */
    Map<String, Long> copyBatches(long seq);
}
