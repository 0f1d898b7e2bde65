/**
 * One protected VM on this node: the composition of proxy path, checkpoint engine or sink, link,
 * heartbeats and failover state machine, with the pairing, handover and takeover workflows. The
 * pure decisions live in {@code failover}, {@code dev.colo.proxy.path} and the checkpoint
 * coordinator; this package only wires and sequences them across threads.
 */
package dev.colo.daemon.vm;
