/**
 * The one-machine lab: network namespaces with a client LAN bridge ({@link dev.colo.lab.LabLan}),
 * the test guests built by {@code scripts/setup} ({@link dev.colo.lab.TestGuest}), a two-host pair
 * of real daemons ({@link dev.colo.lab.HostPairLab}) and client loads. Used by the integration tests,
 * the benchmarks and {@code colo demo}; never by the daemon (the build enforces it).
 */
package dev.colo.lab;
