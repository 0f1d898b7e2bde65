package dev.colo.host.libvirt;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.colo.hypervisor.HypervisorException;
import dev.colo.hypervisor.QmpException;
import org.junit.jupiter.api.Test;

class QmpReplyTest {
    @Test
    void returnsTheReturnMember() {
        assertThat(LibvirtHypervisor.parseReply("query-status", "{\"return\":{\"status\":\"running\"},\"id\":\"libvirt-12\"}")
                .path("status").asText()).isEqualTo("running");
        assertThat(LibvirtHypervisor.parseReply("stop", "{\"return\":{}}").size()).isZero();
    }

    @Test
    void qmpErrorsBecomeTypedExceptions() {
        assertThatThrownBy(() -> LibvirtHypervisor.parseReply("bogus", "{\"error\":{\"class\":\"CommandNotFound\",\"desc\":\"The command bogus has not been found\"}}"))
                .isInstanceOfSatisfying(QmpException.class, e -> {
                    assertThat(e.errorClass()).isEqualTo("CommandNotFound");
                    assertThat(e.command()).isEqualTo("bogus");
                    assertThat(e.kind()).isEqualTo(HypervisorException.Kind.QMP_ERROR);
                });
    }

    @Test
    void malformedRepliesAreClearFailures() {
        assertThatThrownBy(() -> LibvirtHypervisor.parseReply("stop", "not json")).isInstanceOf(HypervisorException.class)
                .hasMessageContaining("malformed JSON");
        assertThatThrownBy(() -> LibvirtHypervisor.parseReply("stop", "[1]")).hasMessageContaining("non-object");
    }
}
