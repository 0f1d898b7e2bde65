package dev.colo.host.libvirt;

import dev.colo.hypervisor.HypervisorException;
import dev.colo.hypervisor.HypervisorException.Kind;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.util.Arrays;

/**
 * The few bytes of QEMU's migration format that colo writes itself to drive a standby in QEMU's
 * COLO secondary mode (migration/colo.c, savevm.c of QEMU 7.2): the ENABLE_COLO command in the
 * first stream, the COLO messages of each checkpoint, and the header that a devices-only save
 * carries but a COLO load must not see. Pure: bytes in, bytes out.
 */
final class ColoStream {
    static final int FILE_MAGIC = 0x5145564d; // "QEVM"
    static final int FILE_VERSION = 3;
    static final byte SECTION_START = 0x01;
    static final byte VM_EOF = 0x00;
    /** QEMU_VM_COMMAND, MIG_CMD_ENABLE_COLO (8), no payload. */
    static final byte[] ENABLE_COLO = {0x08, 0x00, 0x08, 0x00, 0x00};

    /** COLOMessage values. */
    static final int CHECKPOINT_READY = 0;
    static final int CHECKPOINT_REQUEST = 1;
    static final int CHECKPOINT_REPLY = 2;
    static final int VMSTATE_SEND = 3;
    static final int VMSTATE_SIZE = 4;
    static final int VMSTATE_RECEIVED = 5;
    static final int VMSTATE_LOADED = 6;

    private static final byte[] RAM_NAME = "\u0003ram".getBytes(StandardCharsets.US_ASCII);

    private ColoStream() {
    }

    /**
     * A full migration stream with ENABLE_COLO inserted where QEMU's own source puts it: after the
     * header and configuration, before the {@code ram} section starts.
     */
    static byte[] withColoEnabled(byte[] stream) {
        checkHeader(stream, "the first checkpoint's stream");
        int at = ramSectionStart(stream);
        byte[] out = new byte[stream.length + ENABLE_COLO.length];
        System.arraycopy(stream, 0, out, 0, at);
        System.arraycopy(ENABLE_COLO, 0, out, at, ENABLE_COLO.length);
        System.arraycopy(stream, at, out, at + ENABLE_COLO.length, stream.length - at);
        return out;
    }

    /** Offset of the SECTION_START of {@code ram}: 0x01, be32 section id, then the name "ram" with its length byte. */
    static int ramSectionStart(byte[] stream) {
        for (int i = 8 + 5; i + RAM_NAME.length <= stream.length; i++) {
            if (stream[i] == RAM_NAME[0] && Arrays.equals(stream, i, i + RAM_NAME.length, RAM_NAME, 0, RAM_NAME.length)
                    && stream[i - 5] == SECTION_START) {
                return i - 5;
            }
        }
        throw new HypervisorException(Kind.STREAM, "the migration stream has no ram section to enable COLO before ("
                + stream.length + " bytes)");
    }

    /** A devices-only save without its 8-byte file header, which a COLO checkpoint load does not expect. */
    static byte[] devicesBody(byte[] saved) {
        checkHeader(saved, "the devices-only save");
        if (saved[saved.length - 1] != VM_EOF) {
            throw new HypervisorException(Kind.STREAM, "the devices-only save does not end with QEMU_VM_EOF (" + saved.length + " bytes)");
        }
        return Arrays.copyOfRange(saved, 8, saved.length);
    }

    /**
     * What the SVM reads after its CHECKPOINT_REPLY: VMSTATE_SEND, an empty RAM part (colo wrote
     * the RAM itself), then VMSTATE_SIZE and the device state.
     */
    static ByteBuffer checkpointLoad(byte[] devicesBody) {
        ByteBuffer b = ByteBuffer.allocateDirect(4 + 1 + 4 + 8 + devicesBody.length);
        b.putInt(VMSTATE_SEND).put(VM_EOF).putInt(VMSTATE_SIZE).putLong(devicesBody.length).put(devicesBody).flip();
        return b;
    }

    private static void checkHeader(byte[] s, String what) {
        if (s.length < 9) {
            throw new HypervisorException(Kind.STREAM, what + " is too short for a QEMU stream (" + s.length + " bytes)");
        }
        ByteBuffer b = ByteBuffer.wrap(s);
        int magic = b.getInt();
        int version = b.getInt();
        if (magic != FILE_MAGIC || version != FILE_VERSION) {
            throw new HypervisorException(Kind.STREAM, String.format("%s is not a QEMU stream of version %d (magic %08x, version %d)", what,
                    FILE_VERSION, magic, version));
        }
    }
}
