package dev.colo.proxy.compare;

import dev.colo.proxy.packet.Classification;
import java.util.EnumMap;
import java.util.Map;

/** Counters of one comparator. Read on the comparator's thread, or copy with {@link #snapshot()}. */
public final class CompareStats {
    final EnumMap<Reason, Long> checkpointRequests = new EnumMap<>(Reason.class);
    final EnumMap<Classification, Long> primaryFrames = new EnumMap<>(Classification.class);
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

    void count(Reason r) {
        checkpointRequests.merge(r, 1L, Long::sum);
    }

    void count(Classification c) {
        primaryFrames.merge(c, 1L, Long::sum);
    }

    public long checkpointRequests(Reason r) {
        return checkpointRequests.getOrDefault(r, 0L);
    }

    public long checkpointRequestsTotal() {
        return checkpointRequests.values().stream().mapToLong(Long::longValue).sum();
    }

    public Map<Reason, Long> checkpointRequests() {
        return Map.copyOf(checkpointRequests);
    }

    public long primaryFrames(Classification c) {
        return primaryFrames.getOrDefault(c, 0L);
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
        s.checkpointRequests.putAll(checkpointRequests);
        s.primaryFrames.putAll(primaryFrames);
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
        return s;
    }

    @Override
    public String toString() {
        return "released=" + released + " matched=" + matchedFrames + " uncompared=" + releasedUncompared + " compared_bytes=" + comparedBytes
                + " secondary_dropped=" + secondaryDropped + " overflow_dropped=" + overflowDropped + " commits=" + commits
                + " held=" + heldNow + " flows=" + flowsNow + " checkpoint_requests=" + checkpointRequests;
    }
}
