package dev.colo.proxy.compare;

import dev.colo.proxy.frame.Frame;
import java.util.ArrayList;
import java.util.List;

/** Records releases and checkpoint requests; releases each frame's buffer like a real sink would. */
final class RecordingSink implements CompareSink {
    final List<byte[]> released = new ArrayList<>();
    final List<CheckpointRequest> checkpoints = new ArrayList<>();

    @Override
    public void release(Frame primary) {
        byte[] b = new byte[primary.length()];
        primary.data().getBytes(primary.data().readerIndex(), b);
        released.add(b);
        primary.release();
    }

    @Override
    public void checkpoint(CheckpointRequest request) {
        checkpoints.add(request);
    }
}
