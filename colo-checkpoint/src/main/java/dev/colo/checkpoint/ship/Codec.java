package dev.colo.checkpoint.ship;

import com.github.luben.zstd.Zstd;
import net.jpountz.lz4.LZ4Compressor;
import net.jpountz.lz4.LZ4Factory;
import net.jpountz.lz4.LZ4FastDecompressor;

/** Page batch compression. Names travel in {@code PageBatch.codec}. */
public enum Codec {
    RAW("raw"),
    LZ4("lz4"),
    ZSTD("zstd");

    private static final LZ4Factory LZ4F = LZ4Factory.fastestInstance();
    private static final LZ4Compressor LZ4C = LZ4F.fastCompressor();
    private static final LZ4FastDecompressor LZ4D = LZ4F.fastDecompressor();
    /** Level 1: checkpoints are latency-bound; higher levels cost more than they save on a LAN. */
    private static final int ZSTD_LEVEL = 1;

    private final String wireName;

    Codec(String wireName) {
        this.wireName = wireName;
    }

    public String wireName() {
        return wireName;
    }

    public static Codec fromWire(String name) {
        for (Codec c : values()) {
            if (c.wireName.equals(name)) {
                return c;
            }
        }
        throw new CorruptBatchException("unknown page codec '" + name + "'");
    }

    public byte[] compress(byte[] raw, int length) {
        return switch (this) {
            case RAW -> java.util.Arrays.copyOf(raw, length);
            case LZ4 -> {
                byte[] out = new byte[LZ4C.maxCompressedLength(length)];
                int n = LZ4C.compress(raw, 0, length, out, 0, out.length);
                yield java.util.Arrays.copyOf(out, n);
            }
            case ZSTD -> {
                byte[] out = new byte[(int) Zstd.compressBound(length)];
                long n = Zstd.compressByteArray(out, 0, out.length, raw, 0, length, ZSTD_LEVEL);
                if (Zstd.isError(n)) {
                    throw new IllegalStateException("zstd: " + Zstd.getErrorName(n));
                }
                yield java.util.Arrays.copyOf(out, (int) n);
            }
        };
    }

    /**
     * The most a batch may say it holds once decompressed: far above any page batch (1 MiB), disk
     * batch or device state colo sends, far below what would exhaust the heap on a bad header.
     */
    public static final int MAX_RAW_BYTES = 256 << 20;

    /** Decompresses into exactly {@code rawLength} bytes or throws {@link CorruptBatchException}. */
    public byte[] decompress(byte[] data, int rawLength) {
        if (rawLength < 0 || rawLength > MAX_RAW_BYTES) {
            throw new CorruptBatchException(wireName + " batch says it holds " + rawLength + " bytes (at most " + MAX_RAW_BYTES + ")");
        }
        try {
            return switch (this) {
                case RAW -> {
                    if (data.length != rawLength) {
                        throw new CorruptBatchException("raw batch has " + data.length + " bytes, header says " + rawLength);
                    }
                    yield data;
                }
                case LZ4 -> {
                    byte[] out = new byte[rawLength];
                    int read = LZ4D.decompress(data, 0, out, 0, rawLength);
                    if (read != data.length) {
                        throw new CorruptBatchException("lz4 batch: " + read + " of " + data.length + " compressed bytes used");
                    }
                    yield out;
                }
                case ZSTD -> {
                    byte[] out = new byte[rawLength];
                    long n = Zstd.decompressByteArray(out, 0, rawLength, data, 0, data.length);
                    if (Zstd.isError(n) || n != rawLength) {
                        throw new CorruptBatchException("zstd batch: " + (Zstd.isError(n) ? Zstd.getErrorName(n) : n + " of " + rawLength + " bytes"));
                    }
                    yield out;
                }
            };
        } catch (CorruptBatchException e) {
            throw e;
        } catch (RuntimeException e) {
            throw new CorruptBatchException(wireName + " batch does not decompress: " + e.getMessage());
        }
    }
}
