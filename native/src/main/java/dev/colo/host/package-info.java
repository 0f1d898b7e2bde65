/**
 * Host integration through JNA: the libvirt/QMP implementation of the hypervisor port
 * ({@code libvirt}), raw POSIX calls the JDK lacks ({@code posix}) and tap devices ({@code tap}).
 *
 * <p>This is the only module that touches native code. Everything here blocks, so the daemon
 * calls it from worker threads, never from a Netty event loop.
 */
package dev.colo.host;
