/**
 * Test support for deterministic tests: the simulated hypervisor, a manual clock and printed,
 * replayable seeds. Test scope only in every module (the build enforces it); the real lab lives in
 * colo-lab.
 */
package dev.colo.testkit;
