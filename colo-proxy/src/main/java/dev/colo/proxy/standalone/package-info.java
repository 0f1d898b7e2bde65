/**
 * {@code colo compare}: the comparator as a standalone drop-in for QEMU's colo-compare object, with
 * the same four sockets (primary_in, secondary_in, outdev, notify_dev) and the Xen-style notify
 * protocol. A thin Netty adapter around {@link dev.colo.proxy.compare.Comparator}.
 */
package dev.colo.proxy.standalone;
