package dev.colo.host.libvirt;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.colo.hypervisor.HypervisorException;
import java.io.ByteArrayOutputStream;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.util.Arrays;
import org.junit.jupiter.api.Test;

class ColoStreamTest {
    /** Header, a configuration section naming the machine, then the ram section's start and more. */
    private static byte[] stream() {
        ByteArrayOutputStream b = new ByteArrayOutputStream();
        b.writeBytes(ByteBuffer.allocate(8).putInt(ColoStream.FILE_MAGIC).putInt(ColoStream.FILE_VERSION).array());
        b.write(0x07);
        byte[] machine = "pc-i440fx-7.2".getBytes(StandardCharsets.US_ASCII);
        b.writeBytes(ByteBuffer.allocate(4).putInt(machine.length).array());
        b.writeBytes(machine);
        // "ram" inside another name must not be taken for the section (no SECTION_START before it).
        b.writeBytes(new byte[] {0x05, 0x03, 'r', 'a', 'm'});
        b.write(ColoStream.SECTION_START);
        b.writeBytes(ByteBuffer.allocate(4).putInt(2).array());
        b.writeBytes(new byte[] {0x03, 'r', 'a', 'm'});
        b.writeBytes(new byte[] {0, 0, 0, 0, 0, 0, 0, 4, 1, 2, 3, ColoStream.VM_EOF});
        return b.toByteArray();
    }

    @Test
    void enableColoGoesRightBeforeTheRamSectionStarts() {
        byte[] in = stream();
        int at = ColoStream.ramSectionStart(in);
        assertThat(in[at]).isEqualTo(ColoStream.SECTION_START);
        byte[] out = ColoStream.withColoEnabled(in);
        assertThat(out).hasSize(in.length + 5);
        assertThat(Arrays.copyOfRange(out, 0, at)).isEqualTo(Arrays.copyOfRange(in, 0, at));
        assertThat(Arrays.copyOfRange(out, at, at + 5)).containsExactly(0x08, 0x00, 0x08, 0x00, 0x00);
        assertThat(Arrays.copyOfRange(out, at + 5, out.length)).isEqualTo(Arrays.copyOfRange(in, at, in.length));
    }

    @Test
    void aStreamWithoutRamOrWithAnotherMagicIsRefused() {
        byte[] noRam = ByteBuffer.allocate(16).putInt(ColoStream.FILE_MAGIC).putInt(ColoStream.FILE_VERSION).putLong(0).array();
        assertThatThrownBy(() -> ColoStream.withColoEnabled(noRam)).isInstanceOf(HypervisorException.class).hasMessageContaining("no ram section");
        byte[] other = stream();
        other[0] = 'X';
        assertThatThrownBy(() -> ColoStream.withColoEnabled(other)).isInstanceOf(HypervisorException.class).hasMessageContaining("magic");
        assertThatThrownBy(() -> ColoStream.withColoEnabled(new byte[3])).isInstanceOf(HypervisorException.class).hasMessageContaining("too short");
    }

    @Test
    void aDevicesOnlySaveLosesItsHeaderAndMustEndWithEof() {
        byte[] saved = ByteBuffer.allocate(12).putInt(ColoStream.FILE_MAGIC).putInt(ColoStream.FILE_VERSION).put(new byte[] {4, 9, 9, 0})
                .array();
        assertThat(ColoStream.devicesBody(saved)).containsExactly(4, 9, 9, 0);
        byte[] cut = Arrays.copyOf(saved, 11);
        assertThatThrownBy(() -> ColoStream.devicesBody(cut)).isInstanceOf(HypervisorException.class).hasMessageContaining("QEMU_VM_EOF");
        ByteBuffer load = ColoStream.checkpointLoad(new byte[] {4, 9, 9, 0});
        assertThat(load.getInt()).isEqualTo(ColoStream.VMSTATE_SEND);
        assertThat(load.get()).isEqualTo(ColoStream.VM_EOF);
        assertThat(load.getInt()).isEqualTo(ColoStream.VMSTATE_SIZE);
        assertThat(load.getLong()).isEqualTo(4);
        assertThat(load.remaining()).isEqualTo(4);
    }
}
