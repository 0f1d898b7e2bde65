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
    final List<Long> toSecondaryEpochs = new ArrayList<>();
    final List<Frame> toSecondary = new ArrayList<>();
    final List<CheckpointRequest> checkpoints = new ArrayList<>();
    final PrimaryPath primary = new PrimaryPath(CompareConfig.defaults(), toPvm::add, toClient::add,
            (e, fr) -> {
                toSecondaryEpochs.add(e);
                toSecondary.add(fr);
            }, checkpoints::add, 0);

    @AfterEach
    void noLeaks() {
        primary.close();
        for (List<Frame> l : List.of(toPvm, toClient, toSecondary)) {
            l.forEach(Frame::release);
        }
        assertThat(f.unreleased()).isZero();
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
        primary.protect(3, 0);
        primary.onClientFrame(f.udp(1, 2, "question".getBytes()), 0);
        assertThat(toPvm).hasSize(1);
        assertThat(toSecondary).hasSize(1);
        assertThat(toSecondaryEpochs).containsExactly(3L);
        primary.onPvmFrame(f.udp(2, 1, "answer".getBytes()), 0);
        assertThat(toClient).isEmpty();
        primary.onSecondaryFrame(2, f.udp(2, 1, "answer".getBytes()), 0); // an old SVM: ignored
        assertThat(toClient).isEmpty();
        assertThat(primary.staleSecondaryDropped()).isEqualTo(1);
        primary.onSecondaryFrame(3, f.udp(2, 1, "answer".getBytes()), 0);
        assertThat(toClient).hasSize(1);
        assertThat(checkpoints).isEmpty();
    }

    @Test
    void snapshotTagsLaterIngressAndCommitReleasesHeldOutput() {
        primary.protect(1, 0);
        primary.onPvmFrame(f.udp(2, 1, "pending".getBytes()), 0);
        primary.onSnapshot(2, 0);
        primary.onClientFrame(f.udp(1, 2, "after snapshot".getBytes()), 0);
        assertThat(toSecondaryEpochs).containsExactly(2L);
        primary.onCheckpointCommitted(2, 0);
        assertThat(toClient).hasSize(1);
    }

    @Test
    void aroundThePauseClientFramesGoToBothTheRunningAndTheNextSvm() {
        primary.protect(1, 0);
        primary.onCheckpointStarting(2);
        primary.onClientFrame(f.udp(1, 2, "during pause".getBytes()), 0);
        assertThat(toSecondaryEpochs).as("the old SVM and the one checkpoint 2 builds").containsExactly(1L, 2L);
        primary.onSnapshot(2, 0);
        primary.onClientFrame(f.udp(1, 2, "after snapshot".getBytes()), 0);
        assertThat(toSecondaryEpochs).containsExactly(1L, 2L, 2L);
        primary.onCheckpointStarting(3);
        primary.onCheckpointAbandoned(3);
        primary.onClientFrame(f.udp(1, 2, "after abort".getBytes()), 0);
        assertThat(toSecondaryEpochs).containsExactly(1L, 2L, 2L, 2L);
    }

    @Test
    void theFirstCheckpointOfAPairingFeedsTheNewSvmAndComparesOnceItRuns() {
        assertThat(primary.isProtected()).isFalse();
        primary.onCheckpointStarting(1);
        primary.onClientFrame(f.udp(1, 2, "before the first snapshot".getBytes()), 0);
        assertThat(toSecondaryEpochs).containsExactly(1L);
        primary.onSnapshot(1, 0);
        primary.onClientFrame(f.udp(1, 2, "while the first SVM is built".getBytes()), 0);
        assertThat(toSecondaryEpochs).as("the SVM being built gets every input").containsExactly(1L, 1L);
        primary.onPvmFrame(f.udp(2, 1, "no SVM yet: not held".getBytes()), 0);
        assertThat(toClient).hasSize(1);
        assertThat(primary.isProtected()).isFalse();
        primary.onCheckpointCommitted(1, 0);
        assertThat(primary.isProtected()).isTrue();
        primary.onPvmFrame(f.udp(2, 1, "held now".getBytes()), 0);
        assertThat(toClient).hasSize(1);
    }

    @Test
    void losingTheSecondaryReleasesEverythingHeld() {
        primary.protect(1, 0);
        primary.onPvmFrame(f.udp(2, 1, "held".getBytes()), 0);
        primary.unprotect(0);
        assertThat(toClient).hasSize(1);
        assertThat(primary.isProtected()).isFalse();
    }

    // --- secondary ---

    final List<Frame> toSvm = new ArrayList<>();
    final List<Frame> svmToPrimary = new ArrayList<>();
    final List<Long> svmToPrimaryEpochs = new ArrayList<>();
    final List<Frame> direct = new ArrayList<>();

    SecondaryPath secondary(int max) {
        return new SecondaryPath(toSvm::add, (e, fr) -> {
            svmToPrimaryEpochs.add(e);
            svmToPrimary.add(fr);
        }, direct::add, max);
    }

    @Test
    void ingressForTheNextSvmWaitsAndArrivesInOrder() {
        SecondaryPath s = secondary(10);
        s.onSvmReplaced(1);
        s.onIngress(1, f.udp(1, 2, "now".getBytes()));
        assertThat(toSvm).hasSize(1);
        s.onSvmGone();
        s.onIngress(1, f.udp(1, 2, "late for the old svm".getBytes()));
        s.onIngress(2, f.udp(1, 2, "a".getBytes()));
        s.onIngress(2, f.udp(1, 2, "b".getBytes()));
        assertThat(s.buffered()).isEqualTo(3);
        s.onSvmReplaced(2);
        assertThat(toSvm).hasSize(3);
        assertThat(payload(toSvm.get(1))).isEqualTo("a");
        assertThat(payload(toSvm.get(2))).isEqualTo("b");
        assertThat(s.staleIngressDropped()).isEqualTo(1);
        s.onIngress(1, f.udp(1, 2, "stale".getBytes()));
        assertThat(s.staleIngressDropped()).isEqualTo(2);
        toSvm.forEach(Frame::release);
        toSvm.clear();
        s.close();
    }

    @Test
    void bufferBoundDropsAreCounted() {
        SecondaryPath s = secondary(2);
        for (int i = 0; i < 5; i++) {
            s.onIngress(1, f.udp(1, 2, ("x" + i).getBytes()));
        }
        assertThat(s.buffered()).isEqualTo(2);
        assertThat(s.bufferOverflowDropped()).isEqualTo(3);
        s.close();
    }

    @Test
    void afterPromotionTheSvmTalksToTheLanWithItsOffsetsKept() {
        SecondaryPath s = secondary(10);
        s.onSvmReplaced(1);
        // A connection opened after the checkpoint: the SVM picked its own ISN.
        s.onSvmFrame(f.tcp(80, 40000, 7000, 101, TCP_SYN | TCP_ACK, new byte[0]));
        s.onIngress(1, f.tcpIn(40000, 80, 101, 90_001, TCP_ACK, new byte[0])); // acks the PVM's ISN 90000
        assertThat(svmToPrimaryEpochs).containsExactly(1L);
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

    static String payload(Frame fr) {
        PacketView v = new PacketView().parse(fr.ethernet());
        byte[] b = new byte[v.payloadLength()];
        fr.ethernet().getBytes(v.payloadOffset(), b);
        return new String(b);
    }

    @Test
    void qemusRarpSelfAnnouncementFromANewSvmIsNotCompared() {
        SecondaryPath s = secondary(16);
        s.onSvmReplaced(1);
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
