/**
 * The checkpoint coordinator: a pure state machine stepped by events and {@code nowNs}. It decides
 * when to checkpoint, runs one checkpoint at a time through its steps with a timeout on each, and
 * turns any failure into a resumed PVM and a full resync. The engine executes its actions.
 */
package dev.colo.checkpoint.coordinator;
