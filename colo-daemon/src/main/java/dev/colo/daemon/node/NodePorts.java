package dev.colo.daemon.node;

import dev.colo.daemon.events.EventJournal;
import dev.colo.daemon.metrics.DaemonMetrics;
import dev.colo.hypervisor.Hypervisor;
import dev.colo.runtime.NodeRuntime;

/**
 * Everything a node talks to, as ports: its threads and clock, the hypervisor, the link to its
 * peer, its network (tap and VM NICs), the reachability checks, the host's side of disk
 * replication (NBD sockets, disk copies), and where its events and metrics go. Production hands it real ones ({@link NodeAssembly}); the pair simulation, simulated ones.
 */
public record NodePorts(NodeRuntime runtime, Hypervisor hypervisor, PeerLink link, Network network, Reachability reachability,
        DiskHost disks, EventJournal events, DaemonMetrics metrics) {}
