/**
 * The comparator: pure logic stepped by {@code onPrimary/onSecondary/onCheckpointCommitted/doWork}
 * with an injected {@code nowNs}. It decides which primary frames may leave and when a checkpoint
 * is needed, with a reason. No channels, threads or clocks here.
 */
package dev.colo.proxy.compare;
