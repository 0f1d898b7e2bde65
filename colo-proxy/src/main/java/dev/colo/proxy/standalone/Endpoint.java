package dev.colo.proxy.standalone;

import io.netty.channel.unix.DomainSocketAddress;
import java.net.InetSocketAddress;
import java.net.SocketAddress;

/**
 * A socket as QEMU's chardev syntax names it: {@code tcp:HOST:PORT} (connect),
 * {@code tcp:HOST:PORT,server} (listen), {@code unix:PATH} or {@code unix:PATH,server}.
 */
public record Endpoint(boolean unix, String host, int port, String path, boolean server) {

    public static Endpoint parse(String spec) {
        if (spec == null || spec.isBlank()) {
            throw new IllegalArgumentException("empty socket address; expected tcp:HOST:PORT[,server] or unix:PATH[,server]");
        }
        String s = spec.trim();
        boolean server = false;
        if (s.endsWith(",server")) {
            server = true;
            s = s.substring(0, s.length() - ",server".length());
        } else if (s.endsWith(",server=on")) {
            server = true;
            s = s.substring(0, s.length() - ",server=on".length());
        }
        if (s.startsWith("unix:")) {
            String path = s.substring(5);
            if (path.isEmpty()) {
                throw new IllegalArgumentException("'" + spec + "': unix: needs a path");
            }
            return new Endpoint(true, null, 0, path, server);
        }
        if (s.startsWith("tcp:")) {
            String rest = s.substring(4);
            int colon = rest.lastIndexOf(':');
            if (colon <= 0) {
                throw new IllegalArgumentException("'" + spec + "': expected tcp:HOST:PORT");
            }
            String host = rest.substring(0, colon);
            if (host.startsWith("[") && host.endsWith("]")) {
                host = host.substring(1, host.length() - 1);
            }
            int port;
            try {
                port = Integer.parseInt(rest.substring(colon + 1));
            } catch (NumberFormatException e) {
                throw new IllegalArgumentException("'" + spec + "': port '" + rest.substring(colon + 1) + "' is not a number");
            }
            if (port < 0 || port > 65535 || (port == 0 && !server)) {
                throw new IllegalArgumentException("'" + spec + "': port " + port + " out of range");
            }
            return new Endpoint(false, host, port, null, server);
        }
        throw new IllegalArgumentException("'" + spec + "': unknown socket type; expected tcp:HOST:PORT[,server] or unix:PATH[,server]");
    }

    public SocketAddress address() {
        return unix ? new DomainSocketAddress(path) : new InetSocketAddress(host, port);
    }

    @Override
    public String toString() {
        return (unix ? "unix:" + path : "tcp:" + host + ":" + port) + (server ? ",server" : "");
    }
}
