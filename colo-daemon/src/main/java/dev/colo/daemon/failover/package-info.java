/**
 * The failover state machine: pure, stepped by events and {@code nowNs}, one transition gate that
 * reports every change with its evidence. The daemon executes its actions and feeds it heartbeats,
 * witness verdicts and epochs.
 */
package dev.colo.daemon.failover;
