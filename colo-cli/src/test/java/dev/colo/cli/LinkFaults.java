package dev.colo.cli;

import dev.colo.host.posix.NetNamespace;
import dev.colo.lab.HostPairLab;

/** Faults on the replication link, injected with nftables inside host B's namespace (fault matrix only). */
final class LinkFaults {
    private LinkFaults() {}

    /** Drops the replication link (both directions). */
    static void partition(HostPairLab lab) {
        NetNamespace b = lab.b.ns;
        table(b);
        for (String rule : new String[] {"in tcp sport", "in tcp dport", "out tcp sport", "out tcp dport"}) {
            String[] r = rule.split(" ");
            b.exec("nft", "add", "rule", "inet", "colo_it", r[0], r[1], r[2], Integer.toString(HostPairLab.LINK_PORT), "drop").orThrow();
        }
    }

    /** Drops {@code percent}% of the replication link's packets, both directions. */
    static void lossy(HostPairLab lab, int percent) {
        NetNamespace b = lab.b.ns;
        table(b);
        for (String chain : new String[] {"in", "out"}) {
            for (String dir : new String[] {"sport", "dport"}) {
                b.exec("nft", "add", "rule", "inet", "colo_it", chain, "tcp", dir, Integer.toString(HostPairLab.LINK_PORT), "numgen", "random",
                        "mod", "100", "<", Integer.toString(percent), "drop").orThrow();
            }
        }
    }

    static void heal(HostPairLab lab) {
        lab.b.ns.exec("nft", "delete", "table", "inet", "colo_it");
    }

    private static void table(NetNamespace ns) {
        ns.exec("nft", "add", "table", "inet", "colo_it").orThrow();
        ns.exec("nft", "add", "chain", "inet", "colo_it", "in", "{ type filter hook input priority 0 ; }").orThrow();
        ns.exec("nft", "add", "chain", "inet", "colo_it", "out", "{ type filter hook output priority 0 ; }").orThrow();
    }
}
