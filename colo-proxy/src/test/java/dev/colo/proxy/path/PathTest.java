package dev.colo.proxy.path;

import static dev.colo.proxy.packet.PacketView.TCP_ACK;
import static dev.colo.proxy.packet.PacketView.TCP_SYN;
import static org.assertj.core.api.Assertions.assertThat;

import dev.colo.proxy.Frames;
import dev.colo.proxy.compare.CheckpointRequest;
import dev.colo.proxy.compare.CompareConfig;
import dev.colo.proxy.frame.Frame;
import dev.colo.proxy.packet.PacketView;
import io.netty.buffer.ByteBuf;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

class PathTest {
    final Frames f = new Frames();
    final List<Frame> toPvm = new ArrayList<>();
    final List<Frame> toClient = new ArrayList<>();
    final List<String> toSecondaryTags = new ArrayList<>();
    final List<Frame> toSecondary = new ArrayList<>();
    final List<CheckpointRequest> checkpoints = new ArrayList<>();
    int pvmUnread;
    final PrimaryPath primary = new PrimaryPath(CompareConfig.defaults(), toPvm::add, toClient::add,
            (segment, nextOnly, fr) -> {
                toSecondaryTags.add(segment + (nextOnly ? "+" : ""));
                toSecondary.add(fr);
            }, checkpoints::add, () -> pvmUnread);

    @AfterEach
    void noLeaks() {
        primary.close();
        for (List<Frame> l : List.of(toPvm, toClient, toSecondary)) {
            l.forEach(Frame::release);
        }
        assertThat(f.unreleased()).isZero();
    }

    /** A protected path whose SVM of generation 1 runs. */
    void protectedAt1() {
        primary.startProtecting(0, 0);
        primary.onPausing(1);
        primary.onSnapshot(1, 0);
        primary.onCheckpointCommitted(1, 0);
        assertThat(primary.runningGeneration()).isEqualTo(1);
    }

    @Test
    void unprotectedIsAPlainSwitchPort() {
        primary.onClientFrame(f.udp(1, 2, "in".getBytes()), 0);
        primary.onPvmFrame(f.udp(2, 1, "out".getBytes()), 0);
        assertThat(toPvm).hasSize(1);
        assertThat(toClient).hasSize(1);
        assertThat(toSecondary).isEmpty();
    }

    @Test
    void protectedDuplicatesIngressAndHoldsOutputUntilTheSvmMatches() {
        protectedAt1();
        primary.onClientFrame(f.udp(1, 2, "question".getBytes()), 0);
        assertThat(toPvm).hasSize(1);
        assertThat(toSecondaryTags).containsExactly("1");
        primary.onPvmFrame(f.udp(2, 1, "answer".getBytes()), 0);
        assertThat(toClient).isEmpty();
        primary.onSecondaryFrame(0, f.udp(2, 1, "answer".getBytes()), 0); // no SVM of generation 0
        assertThat(toClient).isEmpty();
        assertThat(primary.staleSecondaryDropped()).isEqualTo(1);
        primary.onSecondaryFrame(1, f.udp(2, 1, "answer".getBytes()), 0);
        assertThat(toClient).hasSize(1);
        assertThat(checkpoints).isEmpty();
    }

    @Test
    void theCommitReleasesOnlyOutputProducedBeforeItsSnapshot() {
        protectedAt1();
        primary.onPvmFrame(f.udp(2, 1, "before snapshot 2".getBytes()), 0);
        primary.onPausing(2);
        primary.onSnapshot(2, 0);
        primary.onPvmFrame(f.udp(2, 1, "Set-Cookie: session=PVM-ONLY".getBytes()), 0); // produced after snapshot 2
        primary.onCheckpointCommitted(2, 0);
        assertThat(toClient).as("only the output checkpoint 2 covers").hasSize(1);
        assertThat(PathTest.payload(toClient.get(0))).isEqualTo("before snapshot 2");
        primary.onSecondaryFrame(2, f.udp(2, 1, "Set-Cookie: session=SVM-ONE".getBytes()), 0);
        assertThat(toClient).as("the new SVM disagrees: still held").hasSize(1);
        assertThat(checkpoints).singleElement().satisfies(c -> assertThat(c.reason().name()).isEqualTo("UDP_MISMATCH"));
        primary.onPausing(3);
        primary.onSnapshot(3, 0);
        primary.onCheckpointCommitted(3, 0);
        assertThat(toClient).as("checkpoint 3 covers it").hasSize(2);
    }

    @Test
    void aroundThePauseClientFramesWaitAndUnreadOnesGoToTheNextSvm() {
        protectedAt1();
        primary.onClientFrame(f.udp(1, 2, "read by the PVM".getBytes()), 0);
        primary.onClientFrame(f.udp(1, 2, "still in the PVM's socket".getBytes()), 0);
        primary.onPausing(2);
        primary.onClientFrame(f.udp(1, 2, "during the pause".getBytes()), 0);
        assertThat(toPvm).as("gated until the snapshot").hasSize(2);
        pvmUnread = 1;
        primary.onSnapshot(2, 0);
        assertThat(toPvm).hasSize(3);
        assertThat(toSecondaryTags).as("the running SVM 1 gets all; the SVM of 2 gets what the PVM reads after its snapshot")
                .containsExactly("1", "1", "2", "2+");
        assertThat(PathTest.payload(toSecondary.get(3))).isEqualTo("still in the PVM's socket");
    }

    @Test
    void anAbortAfterTheSnapshotKeepsTheRunningSvmFedAndComparedAndTheRetryWorks() {
        protectedAt1();
        primary.onPausing(2);
        primary.onSnapshot(2, 0);
        primary.onPvmFrame(f.udp(2, 1, "answer".getBytes()), 0);
        primary.onCheckpointAbandoned(2, 0);
        primary.onClientFrame(f.udp(1, 2, "after the abort".getBytes()), 0);
        assertThat(toSecondaryTags).as("the running SVM 1 keeps getting input").endsWith("1");
        primary.onSecondaryFrame(1, f.udp(2, 1, "answer".getBytes()), 0);
        assertThat(toClient).as("the running SVM's output is still compared").hasSize(1);
        primary.onPausing(3);
        primary.onSnapshot(3, 0);
        primary.onCheckpointCommitted(3, 0);
        assertThat(primary.runningGeneration()).isEqualTo(3);
    }

    @Test
    void theFirstCheckpointOfAPairingComparesWhatThePvmSaysAfterItsSnapshot() {
        primary.startProtecting(0, 0);
        primary.onClientFrame(f.udp(1, 2, "before pairing's first pause".getBytes()), 0);
        assertThat(toSecondary).as("no SVM will need it: SVM 1 starts from the snapshot").isEmpty();
        primary.onPvmFrame(f.udp(2, 1, "no SVM yet: nothing to fail over to".getBytes()), 0);
        assertThat(toClient).hasSize(1);
        primary.onPausing(1);
        primary.onSnapshot(1, 0);
        primary.onClientFrame(f.udp(1, 2, "while the first SVM is built".getBytes()), 0);
        assertThat(toSecondaryTags).containsExactly("1");
        primary.onPvmFrame(f.udp(2, 1, "after snapshot 1".getBytes()), 0);
        assertThat(toClient).as("held for SVM 1").hasSize(1);
        primary.onCheckpointCommitted(1, 0);
        assertThat(toClient).hasSize(1);
        primary.onSecondaryFrame(1, f.udp(2, 1, "after snapshot 1".getBytes()), 0);
        assertThat(toClient).hasSize(2);
    }

    @Test
    void losingTheSecondaryReleasesEverythingHeld() {
        protectedAt1();
        primary.onPvmFrame(f.udp(2, 1, "held".getBytes()), 0);
        primary.unprotect(0);
        assertThat(toClient).hasSize(1);
        assertThat(primary.isProtected()).isFalse();
    }

    @Test
    void holdingReleasesNothingUntilTheWitnessSpeaks() {
        protectedAt1();
        primary.hold();
        primary.onPvmFrame(f.udp(2, 1, "x".getBytes()), 0);
        primary.onSecondaryFrame(1, f.udp(2, 1, "x".getBytes()), 0);
        assertThat(toClient).as("matched but withheld").isEmpty();
        primary.resumeProtecting();
        assertThat(toClient).hasSize(1);
        primary.hold();
        primary.onPvmFrame(f.udp(2, 1, "y".getBytes()), 0);
        primary.onSecondaryFrame(1, f.udp(2, 1, "y".getBytes()), 0);
        primary.fence();
        assertThat(toClient).as("a fenced node releases nothing").hasSize(1);
    }

    @Test
    void holdingStillAnswersPingsAndArpSoASecondaryAskingTheLanSeesUsAlive() {
        protectedAt1();
        primary.hold();
        primary.onPvmFrame(f.icmp(0, "echo".getBytes()), 0);
        primary.onPvmFrame(f.arp(Frames.VM_IP, Frames.CLIENT_IP), 0);
        assertThat(toClient).as("a ping's echo and ARP leave uncompared").hasSize(2);
        assertThat(primary.livenessPassedWhileHolding()).isEqualTo(2);
        primary.onPvmFrame(f.icmp(8, "a ping of its own".getBytes()), 0);
        primary.onPvmFrame(f.udp(2, 1, "state".getBytes()), 0);
        primary.onSecondaryFrame(1, f.udp(2, 1, "state".getBytes()), 0);
        assertThat(toClient).as("everything else is held").hasSize(2);
        primary.resumeProtecting();
        assertThat(toClient).as("the matched datagram leaves once protection resumes").hasSize(3);
        primary.onPvmFrame(f.icmp(0, "echo".getBytes()), 0);
        assertThat(toClient).as("protected: an echo waits for the SVM's").hasSize(3);
    }

    // --- secondary ---

    final List<Frame> toSvm = new ArrayList<>();
    final List<Frame> svmToPrimary = new ArrayList<>();
    final List<Long> svmToPrimaryGenerations = new ArrayList<>();
    final List<Frame> direct = new ArrayList<>();

    SecondaryPath secondary(int max) {
        return new SecondaryPath(toSvm::add, (g, fr) -> {
            svmToPrimaryGenerations.add(g);
            svmToPrimary.add(fr);
        }, direct::add, max);
    }

    @Test
    void theRunningSvmGetsEveryFrameAndTheNextOneWhatItsSnapshotMissed() {
        SecondaryPath s = secondary(10);
        s.onSvmStarting(1);
        s.onIngress(1, false, f.udp(1, 2, "now".getBytes()));
        assertThat(toSvm).hasSize(1);
        s.onIngress(2, false, f.udp(1, 2, "a".getBytes()));
        s.onIngress(2, true, f.udp(1, 2, "unread at pause 2".getBytes()));
        s.onIngress(2, false, f.udp(1, 2, "b".getBytes()));
        assertThat(toSvm).as("the running SVM 1 needs every segment-2 frame too, not the replay").hasSize(3);
        assertThat(s.buffered()).isEqualTo(3);
        s.onSvmStarting(2);
        assertThat(toSvm).hasSize(6);
        assertThat(payload(toSvm.get(3))).isEqualTo("a");
        assertThat(payload(toSvm.get(4))).isEqualTo("unread at pause 2");
        assertThat(payload(toSvm.get(5))).isEqualTo("b");
        s.onIngress(1, false, f.udp(1, 2, "stale".getBytes()));
        assertThat(s.staleIngressDropped()).isEqualTo(1);
        toSvm.forEach(Frame::release);
        toSvm.clear();
        s.close();
    }

    @Test
    void anAbandonedCheckpointsFramesAreDroppedAndNeverReplayedIntoTheRetry() {
        SecondaryPath s = secondary(10);
        s.onSvmStarting(1);
        s.onIngress(2, false, f.udp(1, 2, "for 1 and 2".getBytes()));
        s.onIngress(2, true, f.udp(1, 2, "for 2 only".getBytes()));
        s.onCheckpointDropped(2);
        assertThat(s.buffered()).isZero();
        s.onIngress(3, false, f.udp(1, 2, "for 1 and 3".getBytes()));
        s.onSvmStarting(3);
        assertThat(toSvm).extracting(PathTest::payload).containsExactly("for 1 and 2", "for 1 and 3", "for 1 and 3");
        toSvm.forEach(Frame::release);
        toSvm.clear();
        s.close();
    }

    @Test
    void anSvmTakingACheckpointInPlaceGetsNoInputUntilItRunsItAndThenOnlyWhatItsSnapshotMissed() {
        SecondaryPath s = secondary(10);
        s.onSvmStarting(1);
        s.onIngress(2, false, f.udp(1, 2, "read by SVM 1".getBytes()));
        s.onSvmReloading(2);
        assertThat(s.state()).isEqualTo(SecondaryPath.State.RELOADING);
        s.onIngress(1, false, f.udp(1, 2, "late for 1".getBytes()));
        s.onIngress(2, false, f.udp(1, 2, "while it drains".getBytes()));
        assertThat(toSvm).as("nothing new reaches the SVM while it reads what it has").hasSize(1);
        s.onSvmStarting(2);
        assertThat(toSvm).extracting(PathTest::payload)
                .as("the SVM of 2 gets segment 2 once, in order; what only SVM 1 needed is gone")
                .containsExactly("read by SVM 1", "read by SVM 1", "while it drains");
        toSvm.forEach(Frame::release);
        toSvm.clear();
        s.close();
    }

    @Test
    void anInPlaceCheckpointGivenUpBeforeTheSvmStoppedFeedsItWhatWasHeldInOrder() {
        SecondaryPath s = secondary(10);
        s.onSvmStarting(1);
        s.onSvmReloading(2);
        s.onIngress(1, false, f.udp(1, 2, "for 1".getBytes()));
        s.onIngress(2, false, f.udp(1, 2, "for 1 and 2".getBytes()));
        s.onIngress(2, true, f.udp(1, 2, "for 2 only".getBytes()));
        assertThat(toSvm).isEmpty();
        s.onSvmReloadAbandoned();
        assertThat(s.state()).isEqualTo(SecondaryPath.State.FOLLOWING);
        assertThat(toSvm).extracting(PathTest::payload).containsExactly("for 1", "for 1 and 2");
        s.onCheckpointDropped(2);
        assertThat(s.buffered()).isZero();
        s.onSvmReloading(3);
        s.onIngress(3, false, f.udp(1, 2, "held at promotion".getBytes()));
        s.promote();
        assertThat(toSvm).extracting(PathTest::payload).as("a promotion first gives the running SVM what was held")
                .containsExactly("for 1", "for 1 and 2", "held at promotion");
        toSvm.forEach(Frame::release);
        toSvm.clear();
        s.close();
    }

    @Test
    void bufferBoundDropsAreCounted() {
        SecondaryPath s = secondary(2);
        for (int i = 0; i < 5; i++) {
            s.onIngress(1, false, f.udp(1, 2, ("x" + i).getBytes()));
        }
        assertThat(s.buffered()).isEqualTo(2);
        assertThat(s.bufferOverflowDropped()).isEqualTo(3);
        s.close();
    }

    @Test
    void afterPromotionTheSvmTalksToTheLanWithItsOffsetsKept() {
        SecondaryPath s = secondary(10);
        s.onSvmStarting(1);
        // A connection opened after the checkpoint: the SVM picked its own ISN.
        s.onIngress(1, false, f.tcpIn(40000, 80, 100, 0, TCP_SYN, new byte[0]));
        s.onSvmFrame(f.tcp(80, 40000, 7000, 101, TCP_SYN | TCP_ACK, new byte[0]));
        s.onIngress(1, false, f.tcpIn(40000, 80, 101, 90_001, TCP_ACK, new byte[0])); // acks the PVM's ISN 90000
        assertThat(svmToPrimaryGenerations).containsExactly(1L);
        s.promote();
        assertThat(s.promoted()).isTrue();
        s.onSvmFrame(f.tcp(80, 40000, 7001, 101, TCP_ACK, "hi".getBytes()));
        assertThat(direct).hasSize(1);
        PacketView v = new PacketView().parse(direct.get(0).ethernet());
        assertThat(v.seq()).isEqualTo(90_001);
        ByteBuf eth = direct.get(0).ethernet();
        assertThat(Frames.tcpChecksumValid(eth)).isTrue();
        s.onClientFrame(f.tcpIn(40000, 80, 101, 90_003, TCP_ACK, new byte[0]));
        assertThat(new PacketView().parse(toSvm.get(toSvm.size() - 1).ethernet()).ack()).isEqualTo(7003);
        for (List<Frame> l : List.of(toSvm, svmToPrimary, direct)) {
            l.forEach(Frame::release);
            l.clear();
        }
        s.close();
    }

    @Test
    void atPromotionTheSvmsUnacknowledgedOutputGoesOutAtOnceShifted() {
        SecondaryPath s = secondary(10);
        s.onSvmStarting(1);
        s.onIngress(1, false, f.tcpIn(40000, 80, 100, 0, TCP_SYN, new byte[0]));
        s.onSvmFrame(f.tcp(80, 40000, 7000, 101, TCP_SYN | TCP_ACK, new byte[0]));
        assertThat(s.unacked().segments()).as("a SYN-ACK is left to the SVM's own timer").isZero();
        s.onIngress(1, false, f.tcpIn(40000, 80, 101, 90_001, TCP_ACK, "GET".getBytes()));
        s.onSvmFrame(f.tcp(80, 40000, 7001, 104, TCP_ACK, "old".getBytes()));
        s.onSvmFrame(f.tcp(80, 40000, 7004, 104, TCP_ACK, new byte[0])); // a pure ACK: nothing to resend
        s.onSvmFrame(f.tcp(80, 40000, 7004, 104, TCP_ACK, "new".getBytes()));
        // The client acknowledged "old" (in the PVM's numbers: 90004), not "new".
        s.onIngress(1, false, f.tcpIn(40000, 80, 104, 90_004, TCP_ACK, new byte[0]));
        // Another connection, from before the checkpoint (no offset), with an answer in flight.
        s.onSvmFrame(f.tcp(80, 40001, 5000, 900, TCP_ACK | PacketView.TCP_FIN, "bye".getBytes()));
        assertThat(s.unacked().segments()).isEqualTo(2);
        s.promote();
        assertThat(s.resendUnacked()).isEqualTo(2);
        assertThat(direct).hasSize(2);
        var bySeq = new java.util.TreeMap<Long, String>();
        for (Frame d : direct) {
            assertThat(Frames.tcpChecksumValid(d.ethernet())).isTrue();
            bySeq.put(new PacketView().parse(d.ethernet()).seq(), payload(d));
        }
        assertThat(bySeq).containsEntry(90_004L, "new").containsEntry(5000L, "bye");
        assertThat(s.resendUnacked()).as("once").isZero();
        for (List<Frame> l : List.of(toSvm, svmToPrimary, direct)) {
            l.forEach(Frame::release);
            l.clear();
        }
        s.close();
    }

    @Test
    void atPromotionClientsGetDuplicateAcksAtTheSvmsNumbersShifted() {
        SecondaryPath s = secondary(10);
        s.onSvmStarting(1);
        s.onIngress(1, false, f.tcpIn(40000, 80, 100, 0, TCP_SYN, new byte[0]));
        s.onSvmFrame(f.tcp(80, 40000, 7000, 101, TCP_SYN | TCP_ACK, new byte[0]));
        s.onIngress(1, false, f.tcpIn(40000, 80, 101, 90_001, TCP_ACK, "GET".getBytes()));
        s.onSvmFrame(f.tcp(80, 40000, 7001, 104, TCP_ACK, "ans".getBytes()));
        // A connection the SVM only answered a SYN on (the client may still be in SYN-SENT): no nudge.
        s.onIngress(1, false, f.tcpIn(40002, 80, 500, 0, TCP_SYN, new byte[0]));
        s.onSvmFrame(f.tcp(80, 40002, 3000, 501, TCP_SYN | TCP_ACK, new byte[0]));
        // A connection the client reset: no nudge.
        s.onSvmFrame(f.tcp(80, 40003, 4000, 700, TCP_ACK, "x".getBytes()));
        s.onIngress(1, false, f.tcpIn(40003, 80, 700, 4001, PacketView.TCP_RST, new byte[0]));
        s.promote();
        assertThat(s.nudgeClients()).isEqualTo(1);
        assertThat(direct).hasSize(ClientNudges.COPIES);
        for (Frame d : direct) {
            PacketView v = new PacketView().parse(d.ethernet());
            assertThat(Frames.tcpChecksumValid(d.ethernet())).isTrue();
            assertThat(v.tcpFlags()).isEqualTo(TCP_ACK);
            assertThat(v.payloadLength()).isZero();
            assertThat(v.dstPort()).isEqualTo(40000);
            // The SVM's next byte, in the PVM's numbers the client knows (the PVM's ISN was 90000).
            assertThat(v.seq()).isEqualTo(90_004L);
            assertThat(v.ack()).isEqualTo(104L);
            byte[] ip = new byte[20];
            d.ethernet().getBytes(v.l3Offset(), ip);
            assertThat(dev.colo.proxy.packet.Checksums.sum(ip, 0, 20, 0)).as("IP header checksum").isEqualTo(0xffff);
            assertThat(d.ethernet().getUnsignedShort(v.l3Offset() + 2)).isEqualTo(40);
        }
        assertThat(s.nudgeClients()).as("once").isZero();
        for (List<Frame> l : List.of(toSvm, svmToPrimary, direct)) {
            l.forEach(Frame::release);
            l.clear();
        }
        s.close();
    }

    @Test
    void aNewSvmForgetsTheOldOnesUnacknowledgedOutputAndTheBoundHolds() {
        SecondaryPath s = new SecondaryPath(toSvm::add, (g, fr) -> svmToPrimary.add(fr), direct::add, 10, 400);
        s.onSvmStarting(1);
        for (int i = 0; i < 10; i++) {
            s.onSvmFrame(f.tcp(80, 40000, 1000 + 100L * i, 1, TCP_ACK, new byte[100]));
        }
        assertThat(s.unacked().bytes()).isLessThanOrEqualTo(400);
        assertThat(s.unacked().evicted()).isPositive();
        s.onIngress(1, false, f.tcpIn(40000, 80, 1, 1 + 0, PacketView.TCP_RST, new byte[0]));
        assertThat(s.unacked().segments()).as("a reset connection needs nothing").isZero();
        s.onSvmFrame(f.tcp(80, 40002, 1000, 1, TCP_ACK, new byte[10]));
        s.onSvmStarting(2);
        assertThat(s.unacked().segments()).isZero();
        s.promote();
        assertThat(s.resendUnacked()).isZero();
        for (List<Frame> l : List.of(toSvm, svmToPrimary, direct)) {
            l.forEach(Frame::release);
            l.clear();
        }
        s.close();
    }

    static String payload(Frame fr) {
        PacketView v = new PacketView().parse(fr.ethernet());
        byte[] b = new byte[v.payloadLength()];
        fr.ethernet().getBytes(v.payloadOffset(), b);
        return new String(b);
    }

    @Test
    void qemusRarpSelfAnnouncementFromANewSvmIsNotCompared() {
        SecondaryPath s = secondary(16);
        s.onSvmStarting(1);
        io.netty.buffer.ByteBuf rarp = io.netty.buffer.Unpooled.buffer(60);
        rarp.writeBytes(new byte[] {-1, -1, -1, -1, -1, -1, 0x52, 0x54, 0, 1, 2, 3, (byte) 0x80, 0x35});
        rarp.writeZero(46);
        s.onSvmFrame(Frame.of(rarp));
        assertThat(svmToPrimary).isEmpty();
        assertThat(s.selfAnnounceDropped()).isEqualTo(1);
        s.onSvmFrame(f.udp(2, 1, "guest output".getBytes()));
        assertThat(svmToPrimary).hasSize(1);
        svmToPrimary.forEach(Frame::release);
        s.close();
    }
}
