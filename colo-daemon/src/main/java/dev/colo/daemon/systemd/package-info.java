/**
 * systemd integration: sd_notify (READY, STATUS, WATCHDOG, STOPPING) through libsystemd via JNA;
 * a no-op outside systemd.
 */
package dev.colo.daemon.systemd;
