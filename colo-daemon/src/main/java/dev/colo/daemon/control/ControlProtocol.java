package dev.colo.daemon.control;

/**
 * The control socket's protocol, shared by the daemon and the CLI: one JSON object per line. A
 * request is {@code {"op": OP, ...}}; the answer is {@code {"schema":1,"ok":true,"result":{...}}} or
 * {@code {"schema":1,"ok":false,"error":"why and what to do"}}. {@code events} answers with one
 * {@code {"schema":1,"event":{...}}} line per event, then (unless following) {@code {"schema":1,"ok":true,"end":true}}.
 * Fields are only added, never renamed; {@code schema} changes if that promise is ever broken.
 */
public final class ControlProtocol {
    public static final int SCHEMA = 1;
    public static final String DEFAULT_SOCKET = "/run/colo/colo.sock";
    /** Longest request line the daemon reads. */
    public static final int MAX_REQUEST = 64 * 1024;

    private ControlProtocol() {}
}
