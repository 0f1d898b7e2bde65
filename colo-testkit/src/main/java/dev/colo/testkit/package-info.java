/**
 * Shared test support: the simulated hypervisor, a manual clock, and helpers for the real lab
 * (network namespaces, the test guest image, libvirt readiness). Test scope only in other modules.
 */
package dev.colo.testkit;
