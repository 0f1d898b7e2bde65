package dev.colo.checkpoint.disk;

import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Collections;
import java.util.Deque;
import java.util.List;

/**
 * The writes one mirrored disk of the PVM completed, cut into epochs at checkpoint pauses. The
 * writes between the pauses of checkpoints N-1 and N are epoch N: the SVM of N must see exactly
 * them on top of the disk of N-1. An epoch is kept until the secondary acknowledged its checkpoint,
 * so that an abandoned checkpoint's writes go again with the next one (applying an epoch twice in
 * order is harmless: each write sets its bytes to the same value). Pure and not thread-safe: the
 * relay confines it to its connection's event loop.
 */
public final class DiskWriteLog {
    /** One write of {@code length} bytes at {@code offset}; {@code data} is null for zeroes. */
    public record Extent(long offset, long length, byte[] data) {
        public static Extent zeroes(long offset, long length) {
            return new Extent(offset, length, null);
        }

        public static Extent of(long offset, byte[] data) {
            return new Extent(offset, data.length, data);
        }

        public boolean zero() {
            return data == null;
        }

        /** Bytes this extent holds in memory. */
        long held() {
            return data == null ? 0 : data.length;
        }
    }

    /** A closed epoch: the writes that checkpoint {@code seq}'s pause cut off. */
    public record Epoch(long seq, List<Extent> writes) {
        public long bytes() {
            long n = 0;
            for (Extent e : writes) {
                n += e.held();
            }
            return n;
        }
    }

    private final Deque<Epoch> closed = new ArrayDeque<>();
    private List<Extent> open = new ArrayList<>();
    private long openBytes;
    private long closedBytes;
    private long lastCut;

    public void append(Extent e) {
        open.add(e);
        openBytes += e.held();
    }

    /**
     * Checkpoint {@code seq} paused the PVM: what was written since the last cut is its epoch.
     * Numbers only grow (an abandoned number is never reused).
     */
    public void cut(long seq) {
        if (seq <= lastCut) {
            throw new IllegalArgumentException("epoch " + seq + " cut after epoch " + lastCut + ": checkpoint numbers only grow");
        }
        lastCut = seq;
        Epoch e = new Epoch(seq, Collections.unmodifiableList(open));
        closed.addLast(e);
        closedBytes += openBytes;
        open = new ArrayList<>();
        openBytes = 0;
    }

    /** Every epoch not yet acknowledged up to and including {@code seq}'s, oldest first. */
    public List<Epoch> unacknowledged(long seq) {
        List<Epoch> out = new ArrayList<>();
        for (Epoch e : closed) {
            if (e.seq() <= seq) {
                out.add(e);
            }
        }
        return out;
    }

    /** The secondary runs checkpoint {@code seq}: its epochs and all older ones are on its disk. */
    public void acknowledged(long seq) {
        while (!closed.isEmpty() && closed.peekFirst().seq() <= seq) {
            closedBytes -= closed.removeFirst().bytes();
        }
    }

    /** Data bytes held (zero extents cost nothing). */
    public long heldBytes() {
        return openBytes + closedBytes;
    }

    /** Forgets everything (a new pairing copies the disk again). */
    public void clear() {
        closed.clear();
        open = new ArrayList<>();
        openBytes = 0;
        closedBytes = 0;
    }
}
