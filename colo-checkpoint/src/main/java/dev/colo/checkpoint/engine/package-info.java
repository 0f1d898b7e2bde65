/**
 * The checkpoint engine's two halves: {@link dev.colo.checkpoint.engine.PrimaryCheckpointEngine}
 * carries out the coordinator's actions against the hypervisor and the link, and
 * {@link dev.colo.checkpoint.engine.SecondaryCheckpointSink} turns what arrives into a running SVM.
 * Blocking work runs on their own worker threads, never on an event loop.
 */
package dev.colo.checkpoint.engine;
