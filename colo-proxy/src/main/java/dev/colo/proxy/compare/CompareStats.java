package dev.colo.proxy.compare;

import dev.colo.proxy.packet.Classification;
import java.util.EnumMap;
import java.util.Map;

/** Counters of one comparator. Read on the comparator's thread, or copy with {@link #snapshot()}. */
public final class CompareStats {
    private static final Reason[] REASONS = Reason.values();
    private static final Classification[] CLASSES = Classification.values();
    /** Plain arrays by ordinal: these are bumped for every frame. */
    final long[] checkpointRequests = new long[REASONS.length];
    final long[] primaryFrames = new long[CLASSES.length];
    long released;
    long releasedUncompared;
    long matchedFrames;
    long comparedBytes;
    long secondaryDropped;
    long overflowDropped;
    long commits;
    long heldNow;
    long flowsNow;
    long holdNanosTotal;
    /** Primary frames that waited because they acknowledged client bytes the SVM had not acknowledged yet. */
    long ackHeld;
    /** UDP datagrams matched out of the SVM's order. */
    long udpReordered;

    /** Checkpoints the http_date rule avoided: responses equal but for a well-formed Date value. */
    long normalizedHttpDate;

    public long normalizedHttpDate() {
        return normalizedHttpDate;
    }

    public long udpReordered() {
        return udpReordered;
    }

    public long ackHeld() {
        return ackHeld;
    }

    /** Sets the gauges of a path with several comparators (one per SVM generation). */
    public void gauges(long held, long flows) {
        heldNow = held;
        flowsNow = flows;
    }

    void count(Reason r) {
        checkpointRequests[r.ordinal()]++;
    }

    void count(Classification c) {
        primaryFrames[c.ordinal()]++;
    }

    public long checkpointRequests(Reason r) {
        return checkpointRequests[r.ordinal()];
    }

    public long checkpointRequestsTotal() {
        long t = 0;
        for (long v : checkpointRequests) {
            t += v;
        }
        return t;
    }

    /** Non-zero request counters by reason. */
    public Map<Reason, Long> checkpointRequests() {
        EnumMap<Reason, Long> m = new EnumMap<>(Reason.class);
        for (Reason r : REASONS) {
            if (checkpointRequests[r.ordinal()] > 0) {
                m.put(r, checkpointRequests[r.ordinal()]);
            }
        }
        return m;
    }

    public long primaryFrames(Classification c) {
        return primaryFrames[c.ordinal()];
    }

    /** Primary frames released, matched or not. */
    public long released() {
        return released;
    }

    /** Primary frames released without comparison (pure ACKs, retransmissions, commits, passthrough). */
    public long releasedUncompared() {
        return releasedUncompared;
    }

    /** Primary frames released because their secondary counterpart matched. */
    public long matchedFrames() {
        return matchedFrames;
    }

    public long comparedBytes() {
        return comparedBytes;
    }

    public long secondaryDropped() {
        return secondaryDropped;
    }

    /** Primary frames dropped at the hard queue or table limit (never silently: this counts them). */
    public long overflowDropped() {
        return overflowDropped;
    }

    public long commits() {
        return commits;
    }

    public long heldNow() {
        return heldNow;
    }

    public long flowsNow() {
        return flowsNow;
    }

    public CompareStats snapshot() {
        CompareStats s = new CompareStats();
        System.arraycopy(checkpointRequests, 0, s.checkpointRequests, 0, checkpointRequests.length);
        System.arraycopy(primaryFrames, 0, s.primaryFrames, 0, primaryFrames.length);
        s.released = released;
        s.releasedUncompared = releasedUncompared;
        s.matchedFrames = matchedFrames;
        s.comparedBytes = comparedBytes;
        s.secondaryDropped = secondaryDropped;
        s.overflowDropped = overflowDropped;
        s.commits = commits;
        s.heldNow = heldNow;
        s.flowsNow = flowsNow;
        s.holdNanosTotal = holdNanosTotal;
        s.ackHeld = ackHeld;
        s.udpReordered = udpReordered;
        return s;
    }

    @Override
    public String toString() {
        return "released=" + released + " matched=" + matchedFrames + " uncompared=" + releasedUncompared + " compared_bytes=" + comparedBytes
                + " secondary_dropped=" + secondaryDropped + " overflow_dropped=" + overflowDropped + " commits=" + commits
                + " held=" + heldNow + " flows=" + flowsNow + " checkpoint_requests=" + checkpointRequests();
    }
}
