package dev.colo.proxy.frame;

import java.util.concurrent.atomic.LongAdder;

/** Counted framing errors of one socket; read from any thread. */
public final class FrameErrors {
    public final LongAdder zeroLength = new LongAdder();
    public final LongAdder oversize = new LongAdder();
    public final LongAdder badVnetHeader = new LongAdder();
    public final LongAdder frames = new LongAdder();

    public long total() {
        return zeroLength.sum() + oversize.sum() + badVnetHeader.sum();
    }

    @Override
    public String toString() {
        return "frames=" + frames.sum() + " zero_length=" + zeroLength.sum() + " oversize=" + oversize.sum()
                + " bad_vnet_header=" + badVnetHeader.sum();
    }
}
