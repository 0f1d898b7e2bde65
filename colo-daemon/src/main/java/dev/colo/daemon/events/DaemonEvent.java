package dev.colo.daemon.events;

import java.util.Map;

/**
 * One operator-facing event: a state change, a checkpoint, a failover step. {@code message} is a
 * constant sentence; the facts are in {@code fields}. This is both a log line and an entry of the
 * control API's event stream ({@code colo events}).
 *
 * @param seq increases by one per event of this daemon
 * @param timeMs wall-clock time (epoch ms) for people; ordering uses {@code seq}
 */
public record DaemonEvent(long seq, long timeMs, String kind, String message, Map<String, Object> fields) {}
