/**
 * The colo daemon: wires proxy, checkpoint engine and hypervisor into a service with a failover
 * state machine, control socket, metrics and operator logs.
 */
package dev.colo.daemon;
