/**
 * The SVM's TCP rewriter (secondary side, pure): makes the SVM's sequence numbers look like the
 * PVM's to clients, so its connections survive a failover.
 */
package dev.colo.proxy.rewrite;
