package dev.colo.proxy.rewrite;

import static dev.colo.proxy.packet.PacketView.TCP_ACK;
import static dev.colo.proxy.packet.PacketView.TCP_SYN;
import static org.assertj.core.api.Assertions.assertThat;

import dev.colo.proxy.Frames;
import dev.colo.proxy.packet.PacketView;
import dev.colo.testkit.Seeds;
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

    /** The ack number the SVM gets for a client ACK carrying {@code ack}. */
    static long ackIntoSvm(TcpRewriter rw, long ack) {
        ByteBuf b = in(1, ack, TCP_ACK, 0);
        rw.intoSvm(b);
        assertThat(Frames.tcpChecksumValid(b)).isTrue();
        long seen = new PacketView().parse(b).ack();
        b.release();
        return seen;
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
        rw.intoSvm(in(0, 0, TCP_SYN, 0));
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

    /** The TSval/TSecr of a frame built by {@link Frames#tcpBuf} (options: NOP, NOP, timestamp). */
    static long tsVal(ByteBuf b) {
        return b.getUnsignedInt(14 + 20 + 20 + 2 + 2);
    }

    static long tsEcr(ByteBuf b) {
        return b.getUnsignedInt(14 + 20 + 20 + 2 + 6);
    }

    @Test
    void timestampsAreShiftedSoTheClientsPawsCheckAcceptsTheSvm() {
        TcpRewriter rw = new TcpRewriter();
        rw.intoSvm(in(0, 0, TCP_SYN, 0));
        ByteBuf synAck = out(1000, 1, TCP_SYN | TCP_ACK, 0); // TSval = 7000 in this frame builder
        long svmTs = tsVal(synAck);
        rw.outOfSvm(synAck);
        ByteBuf ack = in(1, 5001, TCP_ACK, 0);
        long pvmTs = svmTs + 123_456; // the PVM's clock is ahead; the client echoes the PVM's TSval
        ack.setInt(14 + 20 + 20 + 2 + 6, (int) pvmTs);
        ack.setShort(14 + 20 + 16, Frames.l4Checksum(ack, 14 + 20, ack.readableBytes() - 34, 6, Frames.CLIENT_IP, Frames.VM_IP));
        rw.intoSvm(ack);
        assertThat(tsEcr(ack)).as("the SVM sees its own clock echoed").isEqualTo(svmTs);
        assertThat(Frames.tcpChecksumValid(ack)).isTrue();
        ByteBuf data = out(1001, 1, TCP_ACK, 4);
        long before = tsVal(data);
        rw.outOfSvm(data);
        assertThat(tsVal(data)).as("the client sees the PVM's clock").isEqualTo(before + 123_456);
        assertThat(Frames.tcpChecksumValid(data)).isTrue();
        synAck.release();
        ack.release();
        data.release();
    }

    @Test
    void aRetransmittedSvmSynKeepsTheLearnedOffset() {
        TcpRewriter rw = new TcpRewriter();
        rw.intoSvm(in(0, 0, TCP_SYN, 0)); // the client's SYN reached this SVM: it picks its own ISN
        rw.outOfSvm(out(1000, 1, TCP_SYN | TCP_ACK, 0));
        rw.intoSvm(in(1, 5001, TCP_ACK, 0));
        rw.outOfSvm(out(1000, 1, TCP_SYN | TCP_ACK, 0)); // the slow SVM's SYN-ACK timer fired
        assertThat(ackIntoSvm(rw, 5101)).as("the client acks 100 bytes of the PVM's data").isEqualTo(1101);
    }

    @Test
    void aSynAckOfAConnectionFromBeforeTheCheckpointTeachesNothing() {
        TcpRewriter rw = new TcpRewriter();
        // The SVM holds a half-open connection copied from the PVM and retransmits its SYN-ACK: the
        // PVM's own numbers. The client's next ACK may acknowledge data; it must not become an offset.
        rw.outOfSvm(out(5000, 1, TCP_SYN | TCP_ACK, 0));
        assertThat(ackIntoSvm(rw, 5101)).isEqualTo(5101);
        assertThat(rw.connections()).isZero();
    }

    @Test
    void aSynStillUnreadAtTheSnapshotIsAnsweredByTheSvmWithItsOwnIsnAndTeachesTheOffset() {
        // bench/promise, kill 7 ms after a checkpoint: the client's SYN reached the SVM before the
        // checkpoint, but the PVM's kernel had not read it at the snapshot. Both answered it after,
        // each with its own ISN; the client's ACK came only after the takeover.
        TcpRewriter rw = new TcpRewriter();
        rw.intoSvm(in(0, 0, TCP_SYN, 0));
        rw.onCheckpoint();
        rw.outOfSvm(out(7000, 1, TCP_SYN | TCP_ACK, 0)); // the SVM's own ISN
        ByteBuf ack = in(1, 5001, TCP_ACK, 46); // the client acknowledges the PVM's ISN 5000 with its GET
        rw.intoSvm(ack);
        assertThat(new PacketView().parse(ack).ack()).isEqualTo(7001);
        assertThat(Frames.tcpChecksumValid(ack)).isTrue();
        ByteBuf answer = out(7001, 47, TCP_ACK, 10);
        rw.outOfSvm(answer);
        assertThat(new PacketView().parse(answer).seq()).isEqualTo(5001);
        ack.release();
        answer.release();
    }

    @Test
    void aCopiedSynAckAfterTheClientsAckTeachesNothingEvenForASynFromBeforeTheCheckpoint() {
        TcpRewriter rw = new TcpRewriter();
        rw.intoSvm(in(0, 0, TCP_SYN, 0));
        rw.onCheckpoint(); // the SVM is a copy of a PVM that answered the SYN with ISN 5000
        assertThat(ackIntoSvm(rw, 5001)).as("the client's ACK reaches the SVM: nothing to shift").isEqualTo(5001);
        rw.outOfSvm(out(5000, 1, TCP_SYN | TCP_ACK, 0)); // a SYN-ACK from the copied send queue
        assertThat(ackIntoSvm(rw, 5101)).as("acknowledges 100 bytes of data").isEqualTo(5101);
        assertThat(rw.connections()).isZero();
    }

    @Test
    void aSynFromTwoCheckpointsAgoTeachesNothing() {
        TcpRewriter rw = new TcpRewriter();
        rw.intoSvm(in(0, 0, TCP_SYN, 0));
        rw.onCheckpoint();
        rw.onCheckpoint();
        rw.outOfSvm(out(5000, 1, TCP_SYN | TCP_ACK, 0));
        assertThat(ackIntoSvm(rw, 5101)).isEqualTo(5101);
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

    @Test
    void aConnectionWithoutOffsetIsForgottenAndAClosedOneToo() {
        TcpRewriter rw = new TcpRewriter();
        rw.intoSvm(in(1000, 0, TCP_SYN, 0));
        ByteBuf synAck = out(5000, 1001, TCP_SYN | TCP_ACK, 0);
        rw.outOfSvm(synAck);
        assertThat(rw.connections()).isEqualTo(1);
        ByteBuf same = in(1001, 5001, TCP_ACK, 0); // the PVM picked the same ISN and clock: nothing to shift
        same.setInt(14 + 20 + 20 + 2 + 6, (int) tsVal(synAck));
        rw.intoSvm(same);
        assertThat(rw.connections()).as("a zero offset is not kept").isZero();

        rw.outOfSvm(out(5000, 1001, TCP_SYN | TCP_ACK, 0)); // sent again (a duplicated SYN): learns nothing
        rw.intoSvm(in(1001, 5015, TCP_ACK, 0));
        assertThat(rw.connections()).as("no second lesson from an ACK of data").isZero();
        rw.intoSvm(in(1000, 0, TCP_SYN, 0)); // the port is used again
        rw.outOfSvm(out(7000, 1001, TCP_SYN | TCP_ACK, 0));
        rw.intoSvm(in(1001, 9001, TCP_ACK, 0));
        assertThat(rw.offset(new PacketView().parse(out(0, 0, TCP_ACK, 0)).flowKey())).hasValue(2000);
        rw.outOfSvm(out(7001, 1001, TCP_ACK | dev.colo.proxy.packet.PacketView.TCP_FIN, 0));
        assertThat(rw.connections()).as("open until both sides closed").isEqualTo(1);
        rw.intoSvm(in(1001, 9002, TCP_ACK | dev.colo.proxy.packet.PacketView.TCP_FIN, 0));
        rw.outOfSvm(out(7002, 1002, TCP_ACK, 0));
        assertThat(rw.connections()).isZero();
    }
}
