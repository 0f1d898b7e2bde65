package dev.colo.proxy.standalone;

import java.io.DataInputStream;
import java.io.DataOutputStream;
import java.io.IOException;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.net.SocketTimeoutException;
import java.net.StandardProtocolFamily;
import java.net.UnixDomainSocketAddress;
import java.nio.channels.Channels;
import java.nio.channels.SocketChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;

/** A blocking test peer that speaks QEMU's socket framing, over TCP or a Unix socket. */
final class FramedSocket implements AutoCloseable {
    private final AutoCloseable resource;
    private final DataInputStream in;
    private final DataOutputStream out;
    private final Socket tcp;

    private FramedSocket(AutoCloseable resource, DataInputStream in, DataOutputStream out, Socket tcp) {
        this.resource = resource;
        this.in = in;
        this.out = out;
        this.tcp = tcp;
    }

    static FramedSocket tcp(int port) throws IOException {
        Socket s = new Socket();
        s.connect(new InetSocketAddress("127.0.0.1", port), 2000);
        s.setTcpNoDelay(true);
        return new FramedSocket(s, new DataInputStream(s.getInputStream()), new DataOutputStream(s.getOutputStream()), s);
    }

    static FramedSocket unix(Path path) throws IOException {
        SocketChannel ch = SocketChannel.open(StandardProtocolFamily.UNIX);
        ch.connect(UnixDomainSocketAddress.of(path));
        return new FramedSocket(ch, new DataInputStream(Channels.newInputStream(ch)), new DataOutputStream(Channels.newOutputStream(ch)), null);
    }

    void send(byte[] frame) throws IOException {
        out.writeInt(frame.length);
        out.write(frame);
        out.flush();
    }

    void send(String text) throws IOException {
        send(text.getBytes(StandardCharsets.US_ASCII));
    }

    void sendRaw(byte[] bytes) throws IOException {
        out.write(bytes);
        out.flush();
    }

    /** The next frame, or null when none arrives within {@code timeoutMs} (TCP only). */
    byte[] read(int timeoutMs) throws IOException {
        if (tcp != null) {
            tcp.setSoTimeout(timeoutMs);
        }
        try {
            int len = in.readInt();
            byte[] b = new byte[len];
            in.readFully(b);
            return b;
        } catch (SocketTimeoutException e) {
            return null;
        }
    }

    String readText(int timeoutMs) throws IOException {
        byte[] b = read(timeoutMs);
        return b == null ? null : new String(b, StandardCharsets.US_ASCII);
    }

    static byte[] bytes(io.netty.buffer.ByteBuf b) {
        byte[] out = new byte[b.readableBytes()];
        b.getBytes(b.readerIndex(), out);
        b.release();
        return out;
    }

    @Override
    public void close() throws Exception {
        resource.close();
    }
}
