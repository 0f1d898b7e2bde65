/**
 * The daemon's Prometheus metrics (prometheus-metrics library) and their HTTP endpoint.
 */
package dev.colo.daemon.metrics;
