/**
 * Operator events: each is one log line (constant message, key=value context) and an entry of the
 * bounded journal behind {@code colo events}.
 */
package dev.colo.daemon.events;
