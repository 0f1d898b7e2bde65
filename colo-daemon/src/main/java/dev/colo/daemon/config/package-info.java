/**
 * The daemon's configuration: the INI file format, its parser and validation (every problem named
 * with file, line, section and key), and the validated {@code DaemonConfig} record.
 */
package dev.colo.daemon.config;
