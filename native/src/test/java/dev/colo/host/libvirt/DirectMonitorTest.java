package dev.colo.host.libvirt;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import com.fasterxml.jackson.databind.node.JsonNodeFactory;
import dev.colo.hypervisor.HypervisorException;
import dev.colo.hypervisor.QmpException;
import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.io.OutputStream;
import java.net.StandardProtocolFamily;
import java.net.UnixDomainSocketAddress;
import java.nio.channels.Channels;
import java.nio.channels.ServerSocketChannel;
import java.nio.channels.SocketChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.time.Duration;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The direct monitor against a QMP peer that behaves like QEMU's: greeting, capabilities, events between answers, errors, silence. */
class DirectMonitorTest {
    @TempDir
    Path dir;

    /** A one-connection QMP peer: answers stop/cont, sends an event before each answer, errors otherwise, goes silent on "hang". */
    Thread fakeQemu(Path socket, ServerSocketChannel server) {
        Thread t = new Thread(() -> {
            try (SocketChannel c = server.accept()) {
                OutputStream out = Channels.newOutputStream(c);
                BufferedReader in = new BufferedReader(new InputStreamReader(Channels.newInputStream(c), StandardCharsets.UTF_8));
                out.write("{\"QMP\": {\"version\": {\"qemu\": {\"major\": 7}}, \"capabilities\": [\"oob\"]}}\r\n".getBytes(StandardCharsets.UTF_8));
                for (String line; (line = in.readLine()) != null; ) {
                    if (line.contains("hang")) {
                        continue;
                    }
                    out.write("{\"timestamp\": {\"seconds\": 1}, \"event\": \"STOP\"}\r\n".getBytes(StandardCharsets.UTF_8));
                    String answer = line.contains("qmp_capabilities") || line.contains("\"stop\"") || line.contains("\"cont\"")
                            ? "{\"return\": {}}" : "{\"error\": {\"class\": \"CommandNotFound\", \"desc\": \"The command nope has not been found\"}}";
                    // An answer split in two writes, as a socket may deliver it.
                    byte[] b = (answer + "\r\n").getBytes(StandardCharsets.UTF_8);
                    out.write(b, 0, 5);
                    out.flush();
                    Thread.sleep(5);
                    out.write(b, 5, b.length - 5);
                    out.flush();
                }
            } catch (Exception e) {
                // the test is over
            }
        });
        t.setDaemon(true);
        t.start();
        return t;
    }

    @Test
    void runsCommandsSkipsEventsAndReportsErrorsAndSilence() throws Exception {
        Path socket = dir.resolve("colo-monitor-t.sock");
        try (ServerSocketChannel server = ServerSocketChannel.open(StandardProtocolFamily.UNIX)) {
            server.bind(UnixDomainSocketAddress.of(socket));
            fakeQemu(socket, server);
            DirectMonitor m = DirectMonitor.connect(socket, Duration.ofSeconds(5));
            assertThat(m.execute("stop", null, Duration.ofSeconds(5)).isObject()).isTrue();
            assertThat(m.execute("cont", JsonNodeFactory.instance.objectNode(), Duration.ofSeconds(5)).size()).isZero();
            assertThatThrownBy(() -> m.execute("nope", null, Duration.ofSeconds(5))).isInstanceOf(QmpException.class)
                    .hasMessageContaining("CommandNotFound");
            assertThat(m.open()).as("a QMP error leaves the monitor usable").isTrue();
            assertThatThrownBy(() -> m.execute("hang", null, Duration.ofMillis(200))).isInstanceOf(HypervisorException.class)
                    .hasMessageContaining("in time");
            assertThat(m.open()).as("after a timeout a late answer would be taken for the next command's: closed").isFalse();
        }
    }

    @Test
    void somethingThatIsNotQmpIsRefused() throws Exception {
        Path socket = dir.resolve("colo-monitor-x.sock");
        try (ServerSocketChannel server = ServerSocketChannel.open(StandardProtocolFamily.UNIX)) {
            server.bind(UnixDomainSocketAddress.of(socket));
            Thread t = new Thread(() -> {
                try (SocketChannel c = server.accept()) {
                    Channels.newOutputStream(c).write("{\"hello\": 1}\n".getBytes(StandardCharsets.UTF_8));
                    Thread.sleep(500);
                } catch (Exception e) {
                    // over
                }
            });
            t.setDaemon(true);
            t.start();
            assertThatThrownBy(() -> DirectMonitor.connect(socket, Duration.ofSeconds(2))).hasMessageContaining("not a QMP greeting");
        }
    }
}
