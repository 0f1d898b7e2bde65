package dev.colo.checkpoint.engine;

import dev.colo.checkpoint.dirty.ShadowMemory;
import dev.colo.hypervisor.GuestRam;
import java.nio.ByteBuffer;

/** A {@link ShadowMemory} seen as guest RAM, so verified batches can be applied to it too. */
final class ShadowRam implements GuestRam {
    private final ShadowMemory shadow;

    ShadowRam(ShadowMemory shadow) {
        this.shadow = shadow;
    }

    @Override
    public long size() {
        return shadow.size();
    }

    @Override
    public void read(long offset, ByteBuffer dst) {
        while (dst.hasRemaining()) {
            int n = (int) Math.min(dst.remaining(), shadow.chunkSize() - offset % shadow.chunkSize());
            dst.put(shadow.view(offset, n));
            offset += n;
        }
    }

    @Override
    public void write(long offset, ByteBuffer src) {
        while (src.hasRemaining()) {
            int n = (int) Math.min(src.remaining(), shadow.chunkSize() - offset % shadow.chunkSize());
            ByteBuffer part = src.slice(src.position(), n);
            shadow.view(offset, n).put(part);
            src.position(src.position() + n);
            offset += n;
        }
    }

    @Override
    public ByteBuffer view(long offset, int length) {
        return shadow.view(offset, length).asReadOnlyBuffer();
    }

    @Override
    public int chunkSize() {
        return shadow.chunkSize();
    }

    @Override
    public String describe() {
        return "shadow";
    }

    @Override
    public void close() {
    }
}
