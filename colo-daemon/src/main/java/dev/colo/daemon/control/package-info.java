/**
 * The control API: what the CLI may ask ({@code ControlApi}), its wire protocol (JSON lines, schema
 * 1) and the root-only Unix socket server that answers every request.
 */
package dev.colo.daemon.control;
