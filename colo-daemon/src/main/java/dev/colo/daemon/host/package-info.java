/**
 * Blocking host-side checks and plumbing for failover decisions: the witness ping, the fresh TCP
 * probe of the peer daemon, bridge attachment. Never called on an event loop.
 */
package dev.colo.daemon.host;
