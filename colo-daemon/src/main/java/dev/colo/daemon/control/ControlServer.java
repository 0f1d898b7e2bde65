package dev.colo.daemon.control;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.colo.daemon.events.DaemonEvent;
import dev.colo.daemon.events.EventJournal;
import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.OutputStream;
import java.net.StandardProtocolFamily;
import java.net.UnixDomainSocketAddress;
import java.nio.channels.Channels;
import java.nio.channels.ServerSocketChannel;
import java.nio.channels.SocketChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.time.Duration;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.function.Consumer;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The control API on a Unix socket that only root may open (the socket is 0600 in a 0700
 * directory). One thread per client; every request gets an answer, unknown ones a clear error.
 */
public final class ControlServer implements AutoCloseable {
    private static final Logger log = LoggerFactory.getLogger(ControlServer.class);
    private static final List<String> OPS = List.of("status", "pair", "unpair", "failover", "checkpoint", "events");

    private final Path socket;
    private final ControlApi vm;
    private final EventJournal events;
    private final ObjectMapper json = new ObjectMapper();
    private final ServerSocketChannel server;
    private final ExecutorService clients = Executors.newCachedThreadPool(r -> {
        Thread t = new Thread(r, "colo-control-client");
        t.setDaemon(true);
        return t;
    });
    private final Thread acceptor;
    private volatile boolean closed;

    public ControlServer(Path socket, ControlApi vm, EventJournal events) throws IOException {
        this.socket = socket;
        this.vm = vm;
        this.events = events;
        Path dir = socket.getParent();
        Files.createDirectories(dir);
        Files.setPosixFilePermissions(dir, PosixFilePermissions.fromString("rwx------"));
        if (Files.exists(socket)) {
            if (answers(socket)) {
                throw new IOException("another colo daemon already answers on " + socket + "; stop it first, or set [control] socket");
            }
            Files.delete(socket); // left over by a daemon that was killed
        }
        server = ServerSocketChannel.open(StandardProtocolFamily.UNIX);
        server.bind(UnixDomainSocketAddress.of(socket));
        Files.setPosixFilePermissions(socket, PosixFilePermissions.fromString("rw-------"));
        acceptor = new Thread(this::acceptLoop, "colo-control-accept");
        acceptor.setDaemon(true);
        acceptor.start();
    }

    private static boolean answers(Path socket) {
        try (SocketChannel c = SocketChannel.open(UnixDomainSocketAddress.of(socket))) {
            return true;
        } catch (IOException e) {
            return false;
        }
    }

    private void acceptLoop() {
        while (!closed) {
            try {
                SocketChannel c = server.accept();
                clients.execute(() -> serve(c));
            } catch (IOException e) {
                if (!closed) {
                    log.atWarn().addKeyValue("socket", socket).addKeyValue("reason", e.getMessage()).log("control socket accept failed");
                }
            }
        }
    }

    private void serve(SocketChannel c) {
        try (c; BufferedReader in = new BufferedReader(new InputStreamReader(Channels.newInputStream(c), StandardCharsets.UTF_8));
                OutputStream out = Channels.newOutputStream(c)) {
            String line;
            while ((line = readLine(in)) != null) {
                if (line.isBlank()) {
                    continue;
                }
                if (!handle(line, out)) {
                    return;
                }
            }
        } catch (IOException e) {
            log.atDebug().addKeyValue("reason", e.getMessage()).log("control client went away");
        }
    }

    private static String readLine(BufferedReader in) throws IOException {
        StringBuilder b = new StringBuilder();
        int ch;
        while ((ch = in.read()) >= 0) {
            if (ch == '\n') {
                return b.toString();
            }
            if (b.length() >= ControlProtocol.MAX_REQUEST) {
                throw new IOException("request longer than " + ControlProtocol.MAX_REQUEST + " bytes");
            }
            b.append((char) ch);
        }
        return b.length() == 0 ? null : b.toString();
    }

    /** Answers one request; false when the connection is done (an event stream ended). */
    private boolean handle(String line, OutputStream out) throws IOException {
        JsonNode req;
        try {
            req = json.readTree(line);
        } catch (com.fasterxml.jackson.core.JsonProcessingException e) {
            write(out, error("request is not JSON: " + e.getOriginalMessage()));
            return true;
        }
        if (req == null || !req.isObject() || !req.path("op").isTextual()) {
            write(out, error("request must be a JSON object with an \"op\"; known ops: " + String.join(", ", OPS)));
            return true;
        }
        String op = req.get("op").asText();
        String domain = req.path("vm").isTextual() ? req.get("vm").asText() : null;
        Duration timeout = Duration.ofSeconds(Math.max(1, Math.min(600, req.path("timeout_s").asLong(180))));
        try {
            Object result = switch (op) {
                case "status" -> vm.status();
                case "pair" -> vm.pair(domain, timeout);
                case "unpair" -> vm.unpair(domain);
                case "checkpoint" -> vm.checkpoint(domain, timeout);
                case "failover" -> vm.failover(domain, req.path("planned").asBoolean(false), req.path("force").asBoolean(false));
                case "events" -> {
                    streamEvents(out, req.path("follow").asBoolean(false));
                    yield null;
                }
                default -> throw new OperationException("unknown request '" + op + "'; known ops: " + String.join(", ", OPS));
            };
            if (result == null) {
                return false;
            }
            ObjectNode ok = json.createObjectNode().put("schema", ControlProtocol.SCHEMA).put("ok", true);
            ok.set("result", json.valueToTree(result));
            write(out, ok);
        } catch (OperationException e) {
            write(out, error(e.getMessage()));
        } catch (Exception e) {
            log.atWarn().addKeyValue("op", op).addKeyValue("reason", e.toString()).log("control request failed");
            write(out, error(op + " failed: " + e.getMessage()));
        }
        return true;
    }

    private void streamEvents(OutputStream out, boolean follow) throws IOException {
        if (!follow) {
            for (DaemonEvent e : events.recent()) {
                write(out, eventLine(e));
            }
            write(out, json.createObjectNode().put("schema", ControlProtocol.SCHEMA).put("ok", true).put("end", true));
            return;
        }
        LinkedBlockingQueue<DaemonEvent> queue = new LinkedBlockingQueue<>(10_000);
        Consumer<DaemonEvent> follower = e -> {
            if (!queue.offer(e)) {
                log.atWarn().log("event follower too slow; an event was skipped for it");
            }
        };
        List<DaemonEvent> backlog = events.follow(follower);
        try {
            for (DaemonEvent e : backlog) {
                write(out, eventLine(e));
            }
            while (!closed) {
                DaemonEvent e = queue.poll(1, TimeUnit.SECONDS);
                if (e != null) {
                    write(out, eventLine(e));
                }
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        } finally {
            events.unfollow(follower);
        }
    }

    private ObjectNode eventLine(DaemonEvent e) {
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("seq", e.seq());
        m.put("time_ms", e.timeMs());
        m.put("kind", e.kind());
        m.put("message", e.message());
        Map<String, Object> fields = new LinkedHashMap<>();
        e.fields().forEach((k, v) -> fields.put(k, v instanceof Number || v instanceof Boolean ? v : String.valueOf(v)));
        m.put("fields", fields);
        ObjectNode line = json.createObjectNode().put("schema", ControlProtocol.SCHEMA);
        line.set("event", json.valueToTree(m));
        return line;
    }

    private ObjectNode error(String message) {
        return json.createObjectNode().put("schema", ControlProtocol.SCHEMA).put("ok", false).put("error", message);
    }

    private synchronized void write(OutputStream out, JsonNode node) throws IOException {
        out.write(json.writeValueAsBytes(node));
        out.write('\n');
        out.flush();
    }

    @Override
    public void close() {
        closed = true;
        try {
            server.close();
        } catch (IOException e) {
            // closing anyway
        }
        clients.shutdownNow();
        try {
            Files.deleteIfExists(socket);
        } catch (IOException e) {
            log.atDebug().addKeyValue("socket", socket).log("control socket not removed");
        }
    }
}
