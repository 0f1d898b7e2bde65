package dev.colo.checkpoint.dirty;

import java.io.IOException;
import java.io.RandomAccessFile;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;

/**
 * Detects at run time whether the kernel tracks soft-dirty pages (CONFIG_MEM_SOFT_DIRTY): clear
 * our own soft-dirty bits, write a page, and look for pagemap bit 55. Where it works, the engine can
 * skip the full RAM comparison; where it does not (this lab's kernel), the scanner is the baseline.
 */
public final class SoftDirty {
    private SoftDirty() {}

    /** The outcome of the probe, with the reason when unsupported. */
    public record Support(boolean supported, String detail) {}

    public static Support probe() {
        Path clearRefs = Path.of("/proc/self/clear_refs");
        Path pagemap = Path.of("/proc/self/pagemap");
        if (!Files.isWritable(clearRefs) || !Files.isReadable(pagemap)) {
            return new Support(false, "no writable /proc/self/clear_refs or readable pagemap");
        }
        try {
            Files.writeString(clearRefs, "4");
        } catch (IOException e) {
            return new Support(false, "kernel refused clear_refs=4 (no CONFIG_MEM_SOFT_DIRTY): " + e.getMessage());
        }
        Object unsafe;
        java.lang.reflect.Method allocate;
        java.lang.reflect.Method putByte;
        java.lang.reflect.Method free;
        try {
            Class<?> cls = Class.forName("sun.misc.Unsafe");
            java.lang.reflect.Field field = cls.getDeclaredField("theUnsafe");
            field.setAccessible(true);
            unsafe = field.get(null);
            allocate = cls.getMethod("allocateMemory", long.class);
            putByte = cls.getMethod("putByte", long.class, byte.class);
            free = cls.getMethod("freeMemory", long.class);
        } catch (ReflectiveOperationException | RuntimeException e) {
            return new Support(false, "cannot allocate a probe page: " + e);
        }
        long block;
        try {
            block = (long) allocate.invoke(unsafe, 3 * 4096L);
        } catch (ReflectiveOperationException e) {
            return new Support(false, "cannot allocate a probe page: " + e);
        }
        long address = (block + 4095) & ~4095L;
        try (RandomAccessFile f = new RandomAccessFile(pagemap.toFile(), "r")) {
            putByte.invoke(unsafe, address, (byte) 1);
            f.seek((address / 4096) * 8);
            byte[] entry = new byte[8];
            f.readFully(entry);
            long bits = ByteBuffer.wrap(entry).order(ByteOrder.LITTLE_ENDIAN).getLong();
            boolean present = (bits & (1L << 63)) != 0;
            boolean softDirty = (bits & (1L << 55)) != 0;
            if (!present) {
                return new Support(false, "probe page not present in pagemap");
            }
            return softDirty ? new Support(true, "pagemap bit 55 set after a write")
                    : new Support(false, "pagemap bit 55 stays clear after a write (kernel without CONFIG_MEM_SOFT_DIRTY)");
        } catch (IOException | ReflectiveOperationException e) {
            return new Support(false, "cannot read pagemap: " + e.getMessage());
        } finally {
            try {
                free.invoke(unsafe, block);
            } catch (ReflectiveOperationException ignored) {
                // A probe page of 12 KiB; nothing else to do.
            }
        }
    }
}
