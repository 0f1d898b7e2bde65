package dev.colo.checkpoint.coordinator;

import java.util.ArrayList;
import java.util.List;

/** Records every action in order, as "verb epoch" strings, plus the records. */
final class RecordingActions implements CheckpointActions {
    final List<String> log = new ArrayList<>();
    final List<CheckpointRecord> records = new ArrayList<>();
    final List<Long> released = new ArrayList<>();

    @Override
    public void pause(long epoch) {
        log.add("pause " + epoch);
    }

    @Override
    public void snapshot(long epoch) {
        log.add("snapshot " + epoch);
    }

    @Override
    public void capture(long epoch, boolean full) {
        log.add("capture " + epoch + (full ? " full" : ""));
    }

    @Override
    public void resume(long epoch) {
        log.add("resume " + epoch);
    }

    @Override
    public void ship(long epoch) {
        log.add("ship " + epoch);
    }

    @Override
    public void release(long epoch) {
        log.add("release " + epoch);
        released.add(epoch);
    }

    @Override
    public void abandon(long epoch, String reason) {
        log.add("abandon " + epoch);
    }

    @Override
    public void record(CheckpointRecord record) {
        records.add(record);
    }

    String last() {
        return log.get(log.size() - 1);
    }
}
