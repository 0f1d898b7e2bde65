/**
 * The proxy's two roles as pure cores: {@link dev.colo.proxy.path.PrimaryPath} (tap ⇄ proxy ⇄ PVM,
 * client frames duplicated to the SVM over a link port, PVM output released on a match) and
 * {@link dev.colo.proxy.path.SecondaryPath} (the SVM's side: rewriter, per-epoch ingress buffering,
 * direct mode after promotion). Netty and tap adapters feed them on one thread.
 */
package dev.colo.proxy.path;
