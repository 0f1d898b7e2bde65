package dev.colo.proxy.compare;

import static dev.colo.proxy.packet.PacketView.TCP_ACK;
import static dev.colo.proxy.packet.PacketView.TCP_FIN;
import static dev.colo.proxy.packet.PacketView.TCP_PSH;
import static dev.colo.proxy.packet.PacketView.TCP_RST;
import static dev.colo.proxy.packet.PacketView.TCP_SYN;
import static org.assertj.core.api.Assertions.assertThat;

import dev.colo.proxy.Frames;
import dev.colo.proxy.frame.Frame;
import java.util.Arrays;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

/** Deterministic comparator cases, including the ones QEMU 7.2's colo-compare gets wrong. */
class ComparatorTest {
    static final long MS = 1_000_000L;
    final Frames f = new Frames();
    final RecordingSink sink = new RecordingSink();
    final Comparator cmp = new Comparator(CompareConfig.defaults().withCompareTimeoutMs(100), sink);
    long now = 1_000 * MS;

    @AfterEach
    void noLeaks() {
        cmp.close();
        assertThat(f.unreleased()).as("buffers not released").isZero();
    }

    void p(Frame fr) {
        cmp.onPrimary(fr, now);
    }

    void s(Frame fr) {
        cmp.onSecondary(fr, now);
    }

    /** Handshake from the VM's side: SYN-ACKs with different ISNs on each VM. */
    void handshake(int port, long pIsn, long sIsn) {
        int before = sink.released.size();
        p(f.tcp(80, port, pIsn, 1001, TCP_SYN | TCP_ACK, new byte[0]));
        assertThat(sink.released).as("SYN-ACK held until the SVM answers too").hasSize(before);
        s(f.tcp(80, port, sIsn, 1001, TCP_SYN | TCP_ACK, new byte[0]));
        assertThat(sink.released).hasSize(before + 1);
    }

    @Test
    void differentSegmentationOfTheSameBytesMatches() {
        // QEMU 7.2 asks for a checkpoint here (1x1000 vs 2x500).
        handshake(40000, 5000, 9000);
        byte[] body = Frames.bytes(1000, 1);
        p(f.tcp(80, 40000, 5001, 1001, TCP_ACK | TCP_PSH, body));
        s(f.tcp(80, 40000, 9001, 1001, TCP_ACK, Arrays.copyOfRange(body, 0, 500)));
        assertThat(sink.released).hasSize(1);
        s(f.tcp(80, 40000, 9501, 1001, TCP_ACK | TCP_PSH, Arrays.copyOfRange(body, 500, 1000)));
        assertThat(sink.released).hasSize(2);
        assertThat(sink.checkpoints).isEmpty();
        assertThat(cmp.stats().comparedBytes()).isEqualTo(1000);
        assertThat(cmp.stats().heldNow()).isZero();
    }

    @Test
    void primarySplitSecondaryWholeAlsoMatches() {
        handshake(40001, 1, 2);
        byte[] body = Frames.bytes(1000, 2);
        p(f.tcp(80, 40001, 2, 1001, TCP_ACK, Arrays.copyOfRange(body, 0, 300)));
        p(f.tcp(80, 40001, 302, 1001, TCP_ACK, Arrays.copyOfRange(body, 300, 1000)));
        assertThat(sink.released).hasSize(1);
        s(f.tcp(80, 40001, 3, 1001, TCP_ACK, body));
        assertThat(sink.released).hasSize(3);
        assertThat(sink.checkpoints).isEmpty();
    }

    @Test
    void oneChangedByteAsksForACheckpointWithItsOffset() {
        handshake(40002, 100, 200);
        byte[] a = Frames.bytes(600, 3);
        byte[] b = a.clone();
        b[417] ^= 1;
        p(f.tcp(80, 40002, 101, 1001, TCP_ACK, a));
        s(f.tcp(80, 40002, 201, 1001, TCP_ACK, b));
        assertThat(sink.checkpoints).singleElement().satisfies(r -> {
            assertThat(r.reason()).isEqualTo(Reason.PAYLOAD_MISMATCH);
            assertThat(r.offset()).isEqualTo(417);
            assertThat(r.flow()).contains("10.201.0.2:80>10.201.0.1:40002");
        });
        assertThat(sink.released).hasSize(1); // only the SYN-ACK
        cmp.onCheckpointCommitted(now);
        assertThat(sink.released).hasSize(2);
        assertThat(cmp.checkpointPending()).isFalse();
        assertThat(cmp.stats().checkpointRequests(Reason.PAYLOAD_MISMATCH)).isEqualTo(1);
    }

    @Test
    void aMismatchOnOneFlowLeavesOtherFlowsMatching() {
        handshake(41000, 10, 20);
        handshake(41001, 30, 40);
        p(f.tcp(80, 41000, 11, 1001, TCP_ACK, "hello".getBytes()));
        s(f.tcp(80, 41000, 21, 1001, TCP_ACK, "HELLO".getBytes()));
        assertThat(sink.checkpoints).hasSize(1);
        int before = sink.released.size();
        p(f.tcp(80, 41001, 31, 1001, TCP_ACK, "same".getBytes()));
        s(f.tcp(80, 41001, 41, 1001, TCP_ACK, "same".getBytes()));
        assertThat(sink.released).hasSize(before + 1);
        // The diverged flow keeps holding new output until the commit.
        p(f.tcp(80, 41000, 16, 1001, TCP_ACK, "more".getBytes()));
        assertThat(sink.released).hasSize(before + 1);
        cmp.onCheckpointCommitted(now);
        assertThat(sink.released).hasSize(before + 3);
    }

    @Test
    void pureAcksAndRetransmissionsPassWithoutComparison() {
        handshake(42000, 1000, 2000);
        p(f.tcp(80, 42000, 1001, 1500, TCP_ACK, new byte[0]));
        assertThat(sink.released).hasSize(2);
        byte[] body = Frames.bytes(100, 4);
        p(f.tcp(80, 42000, 1001, 1500, TCP_ACK, body));
        s(f.tcp(80, 42000, 2001, 1500, TCP_ACK, body));
        assertThat(sink.released).hasSize(3);
        p(f.tcp(80, 42000, 1001, 1500, TCP_ACK, body)); // retransmission of matched bytes
        assertThat(sink.released).hasSize(4);
        s(f.tcp(80, 42000, 2001, 1600, TCP_ACK, new byte[0])); // secondary pure ACK: dropped
        assertThat(sink.checkpoints).isEmpty();
        assertThat(cmp.stats().releasedUncompared()).isEqualTo(2);
    }

    @Test
    void finMustMatchAndIsReleasedWhenItDoes() {
        handshake(43000, 1, 1);
        p(f.tcp(80, 43000, 2, 1001, TCP_ACK | TCP_FIN, "bye".getBytes()));
        s(f.tcp(80, 43000, 2, 1001, TCP_ACK, "bye".getBytes()));
        assertThat(sink.released).hasSize(1);
        s(f.tcp(80, 43000, 5, 1001, TCP_ACK | TCP_FIN, new byte[0]));
        assertThat(sink.released).hasSize(2);
        assertThat(sink.checkpoints).isEmpty();
    }

    @Test
    void finAgainstDataIsAControlMismatch() {
        handshake(43001, 1, 1);
        p(f.tcp(80, 43001, 2, 1001, TCP_ACK | TCP_FIN, new byte[0]));
        s(f.tcp(80, 43001, 2, 1001, TCP_ACK, "x".getBytes()));
        assertThat(sink.checkpoints).singleElement().extracting(CheckpointRequest::reason).isEqualTo(Reason.TCP_CONTROL_MISMATCH);
    }

    @Test
    void rstIsHeldUntilTheSecondaryResetsToo() {
        handshake(44000, 7, 8);
        p(f.tcp(80, 44000, 8, 1001, TCP_RST, new byte[0]));
        assertThat(sink.released).hasSize(1);
        s(f.tcp(80, 44000, 9, 1001, TCP_RST, new byte[0]));
        assertThat(sink.released).hasSize(2);
        assertThat(sink.checkpoints).isEmpty();
    }

    @Test
    void identicalUdpDatagramsLeaveInOrder() {
        // QEMU 7.2 released these in reverse order.
        Frame a = f.udp(53, 5353, "first".getBytes());
        Frame b = f.udp(53, 5353, "second".getBytes());
        byte[] aBytes = new byte[a.length()];
        a.data().getBytes(0, aBytes);
        p(a);
        p(b);
        s(f.udp(53, 5353, "first".getBytes()));
        s(f.udp(53, 5353, "second".getBytes()));
        assertThat(sink.released).hasSize(2);
        assertThat(sink.released.get(0)).isEqualTo(aBytes);
        assertThat(sink.checkpoints).isEmpty();
    }

    @Test
    void udpDatagramsTheSvmSentTheOtherWayRoundStillMatch() {
        p(f.udp(53, 5353, "one".getBytes()));
        p(f.udp(53, 5353, "two".getBytes()));
        s(f.udp(53, 5353, "two".getBytes()));
        assertThat(sink.released).as("the SVM's first is the PVM's second: wait for the rest").isEmpty();
        s(f.udp(53, 5353, "one".getBytes()));
        assertThat(sink.released).hasSize(2);
        assertThat(sink.checkpoints).isEmpty();
        assertThat(cmp.stats().udpReordered()).isEqualTo(1);
    }

    @Test
    void differentUdpPayloadAsksForACheckpoint() {
        p(f.udp(53, 5353, "answer-1".getBytes()));
        s(f.udp(53, 5353, "answer-2".getBytes()));
        assertThat(sink.checkpoints).singleElement().extracting(CheckpointRequest::reason).isEqualTo(Reason.UDP_MISMATCH);
    }

    @Test
    void otherFramesCompareWhole() {
        p(f.arp(Frames.VM_IP, Frames.CLIENT_IP));
        s(f.arp(Frames.VM_IP, Frames.CLIENT_IP));
        assertThat(sink.released).hasSize(1);
        p(f.arp(Frames.VM_IP, Frames.CLIENT_IP));
        s(f.arp(Frames.VM_IP, Frames.CLIENT_IP + 1));
        assertThat(sink.checkpoints).singleElement().extracting(CheckpointRequest::reason).isEqualTo(Reason.FRAME_MISMATCH);
    }

    @Test
    void heldOutputOlderThanTheTimeoutAsksForACheckpoint() {
        handshake(45000, 1, 1);
        p(f.tcp(80, 45000, 2, 1001, TCP_ACK, "waiting".getBytes()));
        now += 50 * MS;
        cmp.doWork(now);
        assertThat(sink.checkpoints).isEmpty();
        now += 60 * MS;
        cmp.doWork(now);
        assertThat(sink.checkpoints).singleElement().satisfies(r -> {
            assertThat(r.reason()).isEqualTo(Reason.PRIMARY_TIMEOUT);
            assertThat(r.detail()).contains("110 ms");
        });
        // Coalesced: no second request while one is pending.
        cmp.doWork(now + 10 * MS);
        assertThat(sink.checkpoints).hasSize(1);
        cmp.onCheckpointCommitted(now);
        assertThat(sink.released).hasSize(2);
    }

    @Test
    void unmatchedSecondaryOutputAsksForACheckpointToo() {
        s(f.udp(53, 5353, "only the svm says this".getBytes()));
        now += 150 * MS;
        cmp.doWork(now);
        assertThat(sink.checkpoints).singleElement().extracting(CheckpointRequest::reason).isEqualTo(Reason.SECONDARY_TIMEOUT);
    }

    @Test
    void aRequestNobodyCommitsIsRepeated() {
        p(f.udp(1, 2, "x".getBytes()));
        now += 150 * MS;
        cmp.doWork(now);
        now += 250 * MS;
        cmp.doWork(now);
        assertThat(sink.checkpoints).extracting(CheckpointRequest::reason).containsExactly(Reason.PRIMARY_TIMEOUT, Reason.RETRY);
    }

    @Test
    void queueBoundAsksForACheckpointAndHardLimitDropsAreCounted() {
        Comparator small = new Comparator(CompareConfig.defaults().withMaxHeldTotal(4).withMaxHeldPerFlow(100), sink);
        for (int i = 0; i < 10; i++) {
            small.onPrimary(f.udp(1000 + i, 2, ("x" + i).getBytes()), now);
        }
        assertThat(sink.checkpoints).singleElement().extracting(CheckpointRequest::reason).isEqualTo(Reason.QUEUE_FULL);
        assertThat(small.stats().overflowDropped()).isEqualTo(2);
        small.onCheckpointCommitted(now);
        assertThat(sink.released).hasSize(8);
        small.close();
    }

    @Test
    void connectionTableBoundAsksForACheckpoint() {
        Comparator small = new Comparator(CompareConfig.defaults().withMaxFlows(3), sink);
        for (int i = 0; i < 5; i++) {
            small.onPrimary(f.udp(2000 + i, 2, "x".getBytes()), now);
        }
        assertThat(sink.checkpoints).singleElement().extracting(CheckpointRequest::reason).isEqualTo(Reason.CONNECTION_TABLE_FULL);
        small.onCheckpointCommitted(now);
        assertThat(sink.released).hasSize(5);
        small.close();
    }

    @Test
    void malformedFramesAreComparedWholeAndNeverThrow() {
        p(f.raw(new byte[] {1, 2, 3}));
        s(f.raw(new byte[] {1, 2, 3}));
        assertThat(sink.released).hasSize(1);
        p(f.raw(new byte[0]));
        s(f.raw(new byte[0]));
        assertThat(sink.released).hasSize(2);
        assertThat(cmp.stats().primaryFrames(dev.colo.proxy.packet.Classification.MALFORMED_ETHERNET)).isEqualTo(2);
    }

    @Test
    void midStreamPickupAfterACheckpointComparesWithoutHandshake() {
        byte[] body = Frames.bytes(300, 9);
        p(f.tcp(80, 46000, 77_000, 1001, TCP_ACK, body));
        s(f.tcp(80, 46000, 77_000, 1001, TCP_ACK, Arrays.copyOfRange(body, 0, 100)));
        s(f.tcp(80, 46000, 77_100, 1001, TCP_ACK, Arrays.copyOfRange(body, 100, 300)));
        assertThat(sink.released).hasSize(1);
        assertThat(sink.checkpoints).isEmpty();
    }

    @Test
    void sequenceWrapAroundIsHandled() {
        handshake(47000, 0xffffff00L, 0x7fffff00L);
        byte[] body = Frames.bytes(1000, 10);
        p(f.tcp(80, 47000, 0xffffff01L, 1001, TCP_ACK, body));
        s(f.tcp(80, 47000, 0x7fffff01L, 1001, TCP_ACK, Arrays.copyOfRange(body, 0, 400)));
        s(f.tcp(80, 47000, 0x7fffff01L + 400, 1001, TCP_ACK, Arrays.copyOfRange(body, 400, 1000)));
        assertThat(sink.released).hasSize(2);
        assertThat(sink.checkpoints).isEmpty();
    }

    @Test
    void passthroughReleasesEverythingAtOnce() {
        p(f.udp(1, 2, "held".getBytes()));
        cmp.setPassthrough(true, now);
        assertThat(sink.released).hasSize(1);
        p(f.udp(1, 2, "direct".getBytes()));
        s(f.udp(1, 2, "ignored".getBytes()));
        assertThat(sink.released).hasSize(2);
        assertThat(sink.checkpoints).isEmpty();
    }
}
