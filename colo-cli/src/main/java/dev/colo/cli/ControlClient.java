package dev.colo.cli;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.OutputStream;
import java.net.StandardProtocolFamily;
import java.net.UnixDomainSocketAddress;
import java.nio.channels.Channels;
import java.nio.channels.SocketChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.AccessDeniedException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.function.Consumer;

/** The CLI's side of the daemon's control socket (protocol in dev.colo.daemon.control.ControlProtocol). */
public final class ControlClient implements AutoCloseable {
    public static final ObjectMapper JSON = new ObjectMapper();

    /** The daemon cannot be reached; the message says why and what to do. */
    public static final class Unreachable extends Exception {
        Unreachable(String message) {
            super(message);
        }
    }

    /** The daemon answered with an error. */
    public static final class Refused extends Exception {
        Refused(String message) {
            super(message);
        }
    }

    private final SocketChannel channel;
    private final BufferedReader in;
    private final OutputStream out;

    private ControlClient(SocketChannel channel) {
        this.channel = channel;
        this.in = new BufferedReader(new InputStreamReader(Channels.newInputStream(channel), StandardCharsets.UTF_8));
        this.out = Channels.newOutputStream(channel);
    }

    public static ControlClient connect(Path socket) throws Unreachable {
        if (!Files.exists(socket)) {
            if (Files.exists(socket.getParent()) && !Files.isReadable(socket.getParent())) {
                throw new Unreachable("cannot look into " + socket.getParent() + ": the control socket is for root only; run colo as root (sudo)");
            }
            throw new Unreachable("the colo daemon is not running: no control socket at " + socket
                    + "; start it (systemctl start colo@VM, or colo daemon --config FILE), or point --socket at it");
        }
        try {
            SocketChannel c = SocketChannel.open(StandardProtocolFamily.UNIX);
            c.connect(UnixDomainSocketAddress.of(socket));
            return new ControlClient(c);
        } catch (AccessDeniedException e) {
            throw new Unreachable("permission denied on " + socket + ": the control socket is for root only; run colo as root (sudo)");
        } catch (IOException e) {
            String m = String.valueOf(e.getMessage());
            if (m.contains("denied")) {
                throw new Unreachable("permission denied on " + socket + ": the control socket is for root only; run colo as root (sudo)");
            }
            throw new Unreachable("the colo daemon does not answer on " + socket + " (" + m + "); it may have stopped: check 'journalctl -u colo@VM'");
        }
    }

    /** Sends one request and returns its {@code result}. */
    public JsonNode call(ObjectNode request) throws Unreachable, Refused {
        JsonNode answer = send(request);
        if (!answer.path("ok").asBoolean(false)) {
            throw new Refused(answer.path("error").asText("the daemon gave no reason"));
        }
        return answer.path("result");
    }

    /** Sends an events request; each event goes to {@code sink} until the stream ends. */
    void stream(ObjectNode request, Consumer<JsonNode> sink) throws Unreachable, Refused {
        write(request);
        while (true) {
            JsonNode line = read();
            if (line.has("event")) {
                sink.accept(line.get("event"));
            } else if (line.path("ok").asBoolean(false)) {
                return;
            } else {
                throw new Refused(line.path("error").asText("the daemon gave no reason"));
            }
        }
    }

    private JsonNode send(ObjectNode request) throws Unreachable {
        write(request);
        return read();
    }

    private void write(ObjectNode request) throws Unreachable {
        try {
            out.write(JSON.writeValueAsBytes(request));
            out.write('\n');
            out.flush();
        } catch (IOException e) {
            throw new Unreachable("lost the daemon while sending: " + e.getMessage());
        }
    }

    private JsonNode read() throws Unreachable {
        try {
            String line = in.readLine();
            if (line == null) {
                throw new Unreachable("the daemon closed the control connection without answering; see its log");
            }
            return JSON.readTree(line);
        } catch (IOException e) {
            throw new Unreachable("lost the daemon while waiting for its answer: " + e.getMessage());
        }
    }

    public static ObjectNode request(String op) {
        return JSON.createObjectNode().put("op", op);
    }

    @Override
    public void close() {
        try {
            channel.close();
        } catch (IOException e) {
            // nothing to add
        }
    }
}
