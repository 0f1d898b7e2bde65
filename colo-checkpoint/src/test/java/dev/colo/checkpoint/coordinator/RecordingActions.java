package dev.colo.checkpoint.coordinator;

import java.util.ArrayList;
import java.util.List;

/** Records every action in order, as "verb seq" strings, plus the records. */
final class RecordingActions implements CheckpointActions {
    final List<String> log = new ArrayList<>();
    final List<CheckpointRecord> records = new ArrayList<>();
    final List<Long> released = new ArrayList<>();
    final List<Long> abandoned = new ArrayList<>();
    final List<Long> handedOver = new ArrayList<>();

    @Override
    public void pause(long seq) {
        log.add("pause " + seq);
    }

    @Override
    public void snapshot(long seq) {
        log.add("snapshot " + seq);
    }

    @Override
    public void capture(long seq, boolean full) {
        log.add("capture " + seq + (full ? " full" : ""));
    }

    @Override
    public void resume(long seq) {
        log.add("resume " + seq);
    }

    @Override
    public void ship(long seq) {
        log.add("ship " + seq);
    }

    @Override
    public void release(long seq) {
        log.add("release " + seq);
        released.add(seq);
    }

    @Override
    public void abandon(long seq, String reason) {
        log.add("abandon " + seq);
        abandoned.add(seq);
    }

    @Override
    public void handOver(long seq) {
        log.add("hand over " + seq);
        handedOver.add(seq);
    }

    @Override
    public void record(CheckpointRecord record) {
        records.add(record);
    }

    String last() {
        return log.get(log.size() - 1);
    }
}
