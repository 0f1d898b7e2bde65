/**
 * The checkpoint engine and the replication link: the coordinator (pure), dirty-page discovery and
 * shipping, the secondary sink, and the daemon-to-daemon protocol.
 */
package dev.colo.checkpoint;
