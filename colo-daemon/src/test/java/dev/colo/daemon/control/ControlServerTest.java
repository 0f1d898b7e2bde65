package dev.colo.daemon.control;

import static org.assertj.core.api.Assertions.assertThat;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.colo.daemon.events.EventJournal;
import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.io.OutputStream;
import java.net.StandardProtocolFamily;
import java.net.UnixDomainSocketAddress;
import java.nio.channels.Channels;
import java.nio.channels.SocketChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.time.Duration;
import java.util.Map;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/** The control socket's protocol over a real Unix socket, with a test double behind it. */
class ControlServerTest {
    static final ObjectMapper JSON = new ObjectMapper();

    /** Answers like a protected primary; checkpoint refuses like an unpaired node. */
    static final class Stub implements ControlApi {
        @Override
        public Map<String, Object> status() {
            return Map.of("vm", "web1", "state", "PROTECTED", "epoch", 7);
        }

        @Override
        public Map<String, Object> pair(String domain, Duration timeout) {
            return Map.of("vm", domain, "state", "PROTECTED");
        }

        @Override
        public Map<String, Object> unpair(String domain) {
            return Map.of("vm", domain, "state", "UNPROTECTED");
        }

        @Override
        public Map<String, Object> checkpoint(String domain, Duration timeout) throws OperationException {
            throw new OperationException("no checkpoint possible in state UNPROTECTED on this node");
        }

        @Override
        public Map<String, Object> failover(String domain, boolean planned, boolean force) {
            throw new IllegalStateException("boom");
        }
    }

    Path dir;
    EventJournal events;
    ControlServer server;

    @BeforeEach
    void start() throws Exception {
        dir = Files.createTempDirectory("colo-ctl");
        events = new EventJournal(3, Map.of("vm", "web1"));
        server = new ControlServer(dir.resolve("run").resolve("colo.sock"), new Stub(), events);
    }

    @AfterEach
    void stop() {
        server.close();
    }

    JsonNode ask(SocketChannel c, BufferedReader in, String line) throws Exception {
        OutputStream out = Channels.newOutputStream(c);
        out.write((line + "\n").getBytes(StandardCharsets.UTF_8));
        out.flush();
        return JSON.readTree(in.readLine());
    }

    @Test
    void everyRequestGetsAnAnswerOnOneConnection() throws Exception {
        Path sock = dir.resolve("run").resolve("colo.sock");
        assertThat(PosixFilePermissions.toString(Files.getPosixFilePermissions(sock))).isEqualTo("rw-------");
        assertThat(PosixFilePermissions.toString(Files.getPosixFilePermissions(sock.getParent()))).isEqualTo("rwx------");
        try (SocketChannel c = SocketChannel.open(StandardProtocolFamily.UNIX)) {
            c.connect(UnixDomainSocketAddress.of(sock));
            BufferedReader in = new BufferedReader(new InputStreamReader(Channels.newInputStream(c), StandardCharsets.UTF_8));
            JsonNode status = ask(c, in, "{\"op\":\"status\"}");
            assertThat(status.path("schema").asInt()).isEqualTo(1);
            assertThat(status.path("ok").asBoolean()).isTrue();
            assertThat(status.path("result").path("epoch").asLong()).isEqualTo(7);
            JsonNode refused = ask(c, in, "{\"op\":\"checkpoint\",\"vm\":\"web1\"}");
            assertThat(refused.path("ok").asBoolean()).isFalse();
            assertThat(refused.path("error").asText()).contains("UNPROTECTED");
            JsonNode unknown = ask(c, in, "{\"op\":\"reboot\"}");
            assertThat(unknown.path("error").asText()).contains("unknown request 'reboot'").contains("status, pair");
            JsonNode garbage = ask(c, in, "{not json");
            assertThat(garbage.path("error").asText()).startsWith("request is not JSON");
            JsonNode noOp = ask(c, in, "[1,2]");
            assertThat(noOp.path("error").asText()).contains("\"op\"");
            JsonNode failed = ask(c, in, "{\"op\":\"failover\",\"vm\":\"web1\",\"force\":true}");
            assertThat(failed.path("error").asText()).isEqualTo("failover failed: boom");
            JsonNode stillThere = ask(c, in, "{\"op\":\"pair\",\"vm\":\"web1\"}");
            assertThat(stillThere.path("result").path("state").asText()).isEqualTo("PROTECTED");
        }
    }

    @Test
    void eventsComeAsLinesThenAnEndMarkerAndTheRingIsBounded() throws Exception {
        for (int i = 1; i <= 5; i++) {
            events.info("test", "event happened", "n", i);
        }
        try (SocketChannel c = SocketChannel.open(UnixDomainSocketAddress.of(dir.resolve("run").resolve("colo.sock")))) {
            BufferedReader in = new BufferedReader(new InputStreamReader(Channels.newInputStream(c), StandardCharsets.UTF_8));
            JsonNode first = ask(c, in, "{\"op\":\"events\"}");
            assertThat(first.path("event").path("fields").path("n").asInt()).as("the oldest two fell out of the ring of 3").isEqualTo(3);
            assertThat(first.path("event").path("fields").path("vm").asText()).isEqualTo("web1");
            assertThat(JSON.readTree(in.readLine()).path("event").path("seq").asLong()).isEqualTo(4);
            assertThat(JSON.readTree(in.readLine()).path("event").path("seq").asLong()).isEqualTo(5);
            assertThat(JSON.readTree(in.readLine()).path("end").asBoolean()).isTrue();
        }
    }

    @Test
    void aSecondDaemonOnTheSameSocketIsRefusedAndAStaleSocketIsReplaced() throws Exception {
        Path sock = dir.resolve("run").resolve("colo.sock");
        try {
            new ControlServer(sock, new Stub(), events).close();
            throw new AssertionError("a second server started on a live socket");
        } catch (java.io.IOException e) {
            assertThat(e.getMessage()).contains("another colo daemon already answers");
        }
        server.close();
        Files.createFile(sock); // what a killed daemon leaves behind
        server = new ControlServer(sock, new Stub(), events);
        try (SocketChannel c = SocketChannel.open(UnixDomainSocketAddress.of(sock))) {
            BufferedReader in = new BufferedReader(new InputStreamReader(Channels.newInputStream(c), StandardCharsets.UTF_8));
            assertThat(ask(c, in, "{\"op\":\"status\"}").path("ok").asBoolean()).isTrue();
        }
    }
}
