package dev.colo.host.libvirt;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.JsonNodeFactory;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.colo.hypervisor.HypervisorException;
import dev.colo.hypervisor.HypervisorException.Kind;
import dev.colo.hypervisor.QmpException;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.net.StandardProtocolFamily;
import java.net.UnixDomainSocketAddress;
import java.nio.ByteBuffer;
import java.nio.channels.SelectionKey;
import java.nio.channels.Selector;
import java.nio.channels.SocketChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.time.Duration;

/**
 * A second QMP monitor of a QEMU that libvirt runs, on a Unix socket colo asked QEMU to listen on
 * ({@code -qmp unix:PATH,server=on,wait=off}, {@link DomainXml#withDirectMonitor}). Commands on it
 * skip libvirtd's round trip (3–4 ms each here), which matters inside a checkpoint's pause: stop,
 * the devices-only save and cont. QEMU tells both monitors its events, so libvirt still sees the VM
 * stop and resume. Blocking, one command at a time; any failure closes it (the caller falls back to
 * libvirt's monitor and may open a new one).
 */
final class DirectMonitor implements AutoCloseable {
    private static final ObjectMapper JSON = new ObjectMapper();

    private final Path socket;
    private final SocketChannel channel;
    private final Selector selector;
    private final ByteBuffer in = ByteBuffer.allocateDirect(64 << 10);
    private final ByteArrayOutputStream line = new ByteArrayOutputStream();
    private boolean open = true;

    private DirectMonitor(Path socket, SocketChannel channel, Selector selector) {
        this.socket = socket;
        this.channel = channel;
        this.selector = selector;
    }

    /** Connects and negotiates capabilities; throws when QEMU does not answer as a QMP monitor. */
    static DirectMonitor connect(Path socket, Duration timeout) throws IOException {
        SocketChannel ch = SocketChannel.open(StandardProtocolFamily.UNIX);
        Selector sel = null;
        try {
            ch.connect(UnixDomainSocketAddress.of(socket));
            ch.configureBlocking(false);
            sel = Selector.open();
            ch.register(sel, SelectionKey.OP_READ);
            DirectMonitor m = new DirectMonitor(socket, ch, sel);
            long deadline = System.nanoTime() + timeout.toNanos();
            JsonNode greeting = m.readMessage(deadline);
            if (!greeting.has("QMP")) {
                throw new IOException("not a QMP greeting from " + socket + ": " + greeting);
            }
            m.command("qmp_capabilities", null, deadline);
            return m;
        } catch (IOException | RuntimeException e) {
            if (sel != null) {
                sel.close();
            }
            ch.close();
            throw e instanceof IOException io ? io : new IOException(e.getMessage(), e);
        }
    }

    Path socket() {
        return socket;
    }

    boolean open() {
        return open;
    }

    /** Runs one command; a QMP error becomes {@link QmpException}, silence past {@code timeout} a TIMEOUT. */
    synchronized JsonNode execute(String command, ObjectNode arguments, Duration timeout) {
        if (!open) {
            throw new HypervisorException(Kind.UNAVAILABLE, "direct QMP monitor " + socket + " is closed");
        }
        try {
            return command(command, arguments, System.nanoTime() + timeout.toNanos());
        } catch (IOException e) {
            close();
            throw new HypervisorException(Kind.FAILED, "direct QMP " + command + " on " + socket + " failed: " + e.getMessage(), e);
        } catch (HypervisorException e) {
            if (e.kind() == Kind.TIMEOUT) {
                close(); // an answer may still come and would be taken for the next command's
            }
            throw e;
        }
    }

    private JsonNode command(String command, ObjectNode arguments, long deadline) throws IOException {
        ObjectNode req = JsonNodeFactory.instance.objectNode().put("execute", command);
        if (arguments != null && arguments.size() > 0) {
            req.set("arguments", arguments);
        }
        ByteBuffer out = ByteBuffer.wrap((req + "\n").getBytes(StandardCharsets.UTF_8));
        while (out.hasRemaining()) {
            if (channel.write(out) == 0) {
                await(deadline, command, SelectionKey.OP_WRITE);
            }
        }
        while (true) {
            JsonNode msg = readMessage(deadline);
            if (msg.has("event")) {
                continue; // QEMU tells every monitor its events; libvirt acts on its own copy
            }
            JsonNode err = msg.get("error");
            if (err != null) {
                throw new QmpException(command, err.path("class").asText("UnknownError"), err.path("desc").asText(""));
            }
            if (msg.has("return")) {
                return msg.get("return");
            }
        }
    }

    /** The next newline-terminated JSON message. */
    private JsonNode readMessage(long deadline) throws IOException {
        while (true) {
            in.flip();
            while (in.hasRemaining()) {
                byte b = in.get();
                if (b == '\n') {
                    byte[] text = line.toByteArray();
                    line.reset();
                    in.compact();
                    if (text.length == 0 || (text.length == 1 && text[0] == '\r')) {
                        in.flip();
                        continue;
                    }
                    return JSON.readTree(text);
                }
                line.write(b);
            }
            in.clear();
            int n = channel.read(in);
            if (n < 0) {
                throw new IOException("QEMU closed its QMP socket " + socket);
            }
            if (n == 0) {
                await(deadline, "a QMP answer", SelectionKey.OP_READ);
            }
        }
    }

    private void await(long deadline, String what, int ops) throws IOException {
        long left = deadline - System.nanoTime();
        if (left <= 0) {
            throw new HypervisorException(Kind.TIMEOUT, "no " + what + " on " + socket + " in time");
        }
        channel.keyFor(selector).interestOps(ops);
        selector.select(Math.max(1, left / 1_000_000));
        selector.selectedKeys().clear();
    }

    @Override
    public synchronized void close() {
        if (!open) {
            return;
        }
        open = false;
        try {
            selector.close();
            channel.close();
        } catch (IOException ignored) {
            // closing anyway
        }
    }
}
