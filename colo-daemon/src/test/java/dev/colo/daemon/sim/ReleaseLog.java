package dev.colo.daemon.sim;

import dev.colo.proxy.frame.Frame;
import java.util.ArrayList;
import java.util.List;

/**
 * Every frame a node released onto the LAN, with the node's term at that moment: the split-brain
 * check at the path. Once a node released in term T, no node may release in an older term, and no
 * other node in T.
 */
final class ReleaseLog {
    private long highestTerm = -1;
    private String highestNode;
    private long releases;
    final List<String> violations = new ArrayList<>();
    final java.util.Map<String, Long> byNode = new java.util.TreeMap<>();

    void onRelease(String node, long term, Frame f, long nowNs) {
        releases++;
        byNode.merge(node + "@term" + term, 1L, Long::sum);
        if (term > highestTerm) {
            highestTerm = term;
            highestNode = node;
        } else if (term < highestTerm) {
            violation(String.format("t=%d ms: %s released output in term %d after %s had released in newer term %d", nowNs / 1_000_000, node,
                    term, highestNode, highestTerm));
        } else if (!node.equals(highestNode)) {
            violation(String.format("t=%d ms: two nodes released output in term %d: %s and %s", nowNs / 1_000_000, term, highestNode, node));
        }
    }

    private void violation(String v) {
        if (violations.size() < 5) {
            violations.add(v);
        }
    }

    long releases() {
        return releases;
    }
}
