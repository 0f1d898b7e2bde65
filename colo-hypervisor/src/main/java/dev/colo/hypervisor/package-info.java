/**
 * The hypervisor port: every operation the checkpoint engine and the daemon need from a
 * hypervisor, with no libvirt, JNA or Netty in sight.
 *
 * <p>Two implementations exist: the real one over libvirt and QMP in the {@code colo-native}
 * module, and a simulated one in {@code colo-testkit} that scenario tests run against. All
 * methods block; callers run them on their own worker threads, never on a Netty event loop.
 */
package dev.colo.hypervisor;
