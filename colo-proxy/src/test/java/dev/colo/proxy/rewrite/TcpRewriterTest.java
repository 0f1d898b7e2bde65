package dev.colo.proxy.rewrite;

import static dev.colo.proxy.packet.PacketView.TCP_ACK;
import static dev.colo.proxy.packet.PacketView.TCP_SYN;
import static org.assertj.core.api.Assertions.assertThat;

import dev.colo.proxy.Frames;
import dev.colo.proxy.Seeds;
import dev.colo.proxy.packet.PacketView;
import io.netty.buffer.ByteBuf;
import java.util.Random;
import org.junit.jupiter.api.Test;

class TcpRewriterTest {
    static ByteBuf out(long seq, long ack, int flags, int len) {
        return Frames.tcpBuf(Frames.VM_IP, Frames.CLIENT_IP, 80, 50000, seq, ack, flags, new byte[len], Frames.VM_MAC, Frames.CLIENT_MAC);
    }

    static ByteBuf in(long seq, long ack, int flags, int len) {
        return Frames.tcpBuf(Frames.CLIENT_IP, Frames.VM_IP, 50000, 80, seq, ack, flags, new byte[len], Frames.CLIENT_MAC, Frames.VM_MAC);
    }

    @Test
    void learnsTheOffsetAtTheHandshakeAndShiftsBothDirections() {
        Seeds.forEach(200, 7, seed -> {
            Random rnd = new Random(seed);
            long pvmIsn = rnd.nextInt() & 0xffffffffL;
            long svmIsn = rnd.nextInt() & 0xffffffffL;
            long clientIsn = rnd.nextInt() & 0xffffffffL;
            TcpRewriter rw = new TcpRewriter();
            rw.intoSvm(in(clientIsn, 0, TCP_SYN, 0));
            rw.outOfSvm(out(svmIsn, clientIsn + 1, TCP_SYN | TCP_ACK, 0));
            // The client acknowledges the PVM's SYN-ACK: that is how the SVM learns the PVM's ISN.
            ByteBuf ack = in(clientIsn + 1, (pvmIsn + 1) & 0xffffffffL, TCP_ACK, 10);
            rw.intoSvm(ack);
            PacketView v = new PacketView().parse(ack);
            assertThat(v.ack()).isEqualTo((svmIsn + 1) & 0xffffffffL);
            assertThat(Frames.tcpChecksumValid(ack)).isTrue();

            ByteBuf data = out((svmIsn + 1) & 0xffffffffL, clientIsn + 11, TCP_ACK, 100);
            rw.outOfSvm(data);
            assertThat(new PacketView().parse(data).seq()).isEqualTo((pvmIsn + 1) & 0xffffffffL);
            assertThat(Frames.tcpChecksumValid(data)).isTrue();
            ack.release();
            data.release();
        });
    }

    @Test
    void aCheckpointForgetsOffsetsAndAFailoverKeepsThem() {
        TcpRewriter rw = new TcpRewriter();
        rw.outOfSvm(out(1000, 1, TCP_SYN | TCP_ACK, 0));
        rw.intoSvm(in(1, 5001, TCP_ACK, 0));
        assertThat(rw.connections()).isEqualTo(1);
        ByteBuf data = out(1001, 1, TCP_ACK, 5);
        rw.outOfSvm(data);
        assertThat(new PacketView().parse(data).seq()).isEqualTo(5001);
        rw.onCheckpoint();
        assertThat(rw.connections()).isZero();
        ByteBuf after = out(5010, 1, TCP_ACK, 5); // the SVM is a copy of the PVM now: same numbers
        rw.outOfSvm(after);
        assertThat(new PacketView().parse(after).seq()).isEqualTo(5010);
        data.release();
        after.release();
    }

    @Test
    void leavesNonTcpAndUnknownConnectionsAlone() {
        TcpRewriter rw = new TcpRewriter();
        ByteBuf b = out(42, 43, TCP_ACK, 3);
        ByteBuf copy = b.copy();
        rw.outOfSvm(b);
        rw.intoSvm(b);
        assertThat(b).isEqualTo(copy);
        assertThat(rw.rewritten()).isZero();
        b.release();
        copy.release();
    }
}
