package dev.colo.daemon.sim;

import dev.colo.checkpoint.disk.DiskRelay;
import dev.colo.checkpoint.disk.ReplicaDisk;
import dev.colo.daemon.node.DiskHost;
import java.nio.ByteBuffer;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.Map;

/**
 * One simulated host's disk files, in memory: the secondary's copies live here, so the simulated
 * hypervisor's SVMs can read them through their overlays. The PVM's writes reach the relay straight
 * from the simulated hypervisor (no NBD), so serving a socket does nothing.
 */
final class SimDisks implements DiskHost {
    /** One in-memory file. */
    static final class File implements ReplicaDisk.Storage {
        byte[] bytes;
        long syncs;

        File(long size) {
            bytes = new byte[Math.toIntExact(size)];
        }

        @Override
        public int read(ByteBuffer dst, long position) {
            int n = (int) Math.min(dst.remaining(), bytes.length - position);
            if (n <= 0) {
                return -1;
            }
            dst.put(bytes, (int) position, n);
            return n;
        }

        @Override
        public int write(ByteBuffer src, long position) {
            int n = src.remaining();
            src.get(bytes, (int) position, n);
            return n;
        }

        @Override
        public void force(boolean metaData) {
            syncs++;
        }

        @Override
        public void close() {
        }
    }

    final Map<Path, File> files = new HashMap<>();
    final Map<Path, String> texts = new HashMap<>();

    @Override
    public AutoCloseable serveNbd(Path socket, DiskRelay relay, String user) {
        return () -> { };
    }

    @Override
    public ReplicaDisk createCopy(String disk, Path file, long size, String user) {
        File f = new File(size);
        files.put(file, f);
        return new ReplicaDisk(disk, file, size, f);
    }

    @Override
    public ReplicaDisk openCopy(String disk, Path file, long size) throws java.io.IOException {
        File f = files.get(file);
        if (f == null || f.bytes.length != size) {
            throw new java.io.IOException("no copy of " + size + " bytes at " + file);
        }
        return new ReplicaDisk(disk, file, size, f);
    }

    @Override
    public String readText(Path file) {
        return texts.get(file);
    }

    @Override
    public void writeText(Path file, String text) {
        texts.put(file, text);
    }

    @Override
    public java.util.List<Path> list(Path dir) {
        java.util.List<Path> out = new java.util.ArrayList<>();
        for (Path p : files.keySet()) {
            if (dir.equals(p.getParent())) {
                out.add(p);
            }
        }
        for (Path p : texts.keySet()) {
            if (dir.equals(p.getParent())) {
                out.add(p);
            }
        }
        return out;
    }

    @Override
    public void createDirectory(Path dir) {
    }

    @Override
    public long usableSpace(Path dir) {
        return 1L << 40;
    }

    @Override
    public long imageSize(Path file, String format) throws java.io.IOException {
        File f = files.get(file);
        if (f == null) {
            throw new java.io.IOException("no image at " + file);
        }
        return f.bytes.length;
    }

    @Override
    public boolean exists(Path file) {
        return files.containsKey(file);
    }

    @Override
    public void delete(Path file) {
        files.remove(file);
        texts.remove(file);
    }
}
