package dev.colo.checkpoint.ship;

/** A page batch or checkpoint that must not be applied: wrong checksum, size, codec or sequence. */
public final class CorruptBatchException extends RuntimeException {
    public CorruptBatchException(String message) {
        super(message);
    }
}
