package dev.colo.checkpoint.link;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import com.google.protobuf.ByteString;
import com.google.protobuf.InvalidProtocolBufferException;
import dev.colo.checkpoint.link.proto.CheckpointAck;
import dev.colo.checkpoint.link.proto.Envelope;
import dev.colo.checkpoint.link.proto.PageBatch;
import dev.colo.checkpoint.link.proto.Role;
import dev.colo.checkpoint.link.proto.Status;
import org.junit.jupiter.api.Test;

/** The generated envelope round-trips and rejects garbage with an exception, not a crash. */
class LinkProtoTest {
    @Test
    void envelopeRoundTripsEveryHeaderField() throws Exception {
        Envelope e = Envelope.newBuilder().setProtocolVersion(1).setPair("web1").setTerm(42).setRole(Role.PRIMARY)
                .setPages(PageBatch.newBuilder().setCheckpointSeq(42).addPages(7).addZeroPages(8).setCodec("lz4")
                        .setData(ByteString.copyFrom(new byte[] {1, 2, 3})).setCrc32C(99))
                .build();
        Envelope back = Envelope.parseFrom(e.toByteArray());
        assertThat(back).isEqualTo(e);
        assertThat(back.getBodyCase()).isEqualTo(Envelope.BodyCase.PAGES);
        Envelope ack = Envelope.newBuilder().setProtocolVersion(1).setPair("web1").setTerm(43)
                .setCheckpointAck(CheckpointAck.newBuilder().setCheckpointSeq(42).setStatus(Status.FENCED)).build();
        assertThat(Envelope.parseFrom(ack.toByteArray()).getCheckpointAck().getStatus()).isEqualTo(Status.FENCED);
    }

    @Test
    void garbageIsAParseErrorNotACrash() {
        assertThatThrownBy(() -> Envelope.parseFrom(new byte[] {(byte) 0xff, (byte) 0xff, (byte) 0xff}))
                .isInstanceOf(InvalidProtocolBufferException.class);
    }
}
