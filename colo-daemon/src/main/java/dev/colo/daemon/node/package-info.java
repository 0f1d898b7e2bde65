/**
 * One protected VM on one node, split by responsibility. {@link dev.colo.daemon.node.Node}
 * composes the parts; {@link dev.colo.daemon.node.FailoverControl} drives the failover state machine
 * (heartbeats, witness, actions); {@link dev.colo.daemon.node.LinkRouter} turns each peer message
 * into one typed call on the lane that owns it; {@link dev.colo.daemon.node.PrimaryRole} (path,
 * engine, {@link dev.colo.daemon.node.PairingWorkflow}, switchover) and
 * {@link dev.colo.daemon.node.SecondaryRole} (path, sink, standbys and their NICs, takeover) are the
 * two roles; {@link dev.colo.daemon.node.NodeStatus} is the status view and
 * {@link dev.colo.daemon.node.ControlFacade} the control API. The node takes its runtime (threads
 * and clock), hypervisor, link, network and reachability as ports ({@link dev.colo.daemon.node.NodePorts}):
 * {@link dev.colo.daemon.node.NodeAssembly} hands it real ones, the pair simulation simulated ones.
 */
package dev.colo.daemon.node;
