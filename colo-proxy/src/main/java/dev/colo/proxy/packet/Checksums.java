package dev.colo.proxy.packet;

/** Internet checksum arithmetic (RFC 1071, incremental update per RFC 1624). */
public final class Checksums {
    private Checksums() {}

    /** The checksum after a 32-bit field covered by it changed from {@code oldValue} to {@code newValue}. */
    public static int adjust32(int checksum, long oldValue, long newValue) {
        int sum = checksum;
        sum = adjust16(sum, (int) (oldValue >>> 16) & 0xffff, (int) (newValue >>> 16) & 0xffff);
        return adjust16(sum, (int) oldValue & 0xffff, (int) newValue & 0xffff);
    }

    /** RFC 1624 eqn. 3: HC' = ~(~HC + ~m + m'). */
    public static int adjust16(int checksum, int oldWord, int newWord) {
        int sum = (~checksum & 0xffff) + (~oldWord & 0xffff) + (newWord & 0xffff);
        sum = (sum & 0xffff) + (sum >>> 16);
        sum = (sum & 0xffff) + (sum >>> 16);
        return ~sum & 0xffff;
    }

    /** One's-complement sum of {@code bytes} (for tests and fresh checksums). */
    public static int sum(byte[] bytes, int off, int len, int initial) {
        long s = initial;
        int i = off;
        for (; i + 1 < off + len; i += 2) {
            s += ((bytes[i] & 0xff) << 8) | (bytes[i + 1] & 0xff);
        }
        if (i < off + len) {
            s += (bytes[i] & 0xff) << 8;
        }
        while ((s >>> 16) != 0) {
            s = (s & 0xffff) + (s >>> 16);
        }
        return (int) s;
    }
}
