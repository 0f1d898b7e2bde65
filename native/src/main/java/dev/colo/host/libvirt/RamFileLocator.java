package dev.colo.host.libvirt;

import dev.colo.hypervisor.HypervisorException;
import dev.colo.hypervisor.HypervisorException.Kind;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Optional;

/**
 * Finds a running domain's guest RAM file. libvirt names it
 * {@code <memory_backing_dir>/<domid>-<name>/pc.ram}, which changes at every start, so we ask the
 * QEMU process itself: its pid from libvirt's pid file, then the {@code pc.ram} line of its maps.
 */
public final class RamFileLocator {
    private final Path libvirtRunDir;
    private final Path proc;

    public RamFileLocator(Path libvirtRunDir, Path proc) {
        this.libvirtRunDir = libvirtRunDir;
        this.proc = proc;
    }

    public static RamFileLocator system() {
        return new RamFileLocator(Path.of("/run/libvirt/qemu"), Path.of("/proc"));
    }

    /** The QEMU pid libvirt recorded for a running domain. */
    public long qemuPid(String domainName) {
        Path pidFile = libvirtRunDir.resolve(domainName + ".pid");
        try {
            return Long.parseLong(Files.readString(pidFile).trim());
        } catch (IOException | NumberFormatException e) {
            throw new HypervisorException(Kind.INVALID_STATE,
                    "no QEMU pid for domain " + domainName + " in " + pidFile + " (is it running?)", e);
        }
    }

    /** The RAM file path, or empty when the process maps no {@code pc.ram} file. */
    public Optional<Path> ramFile(long pid) {
        List<String> lines;
        try {
            lines = Files.readAllLines(proc.resolve(Long.toString(pid)).resolve("maps"));
        } catch (IOException e) {
            throw new HypervisorException(Kind.INVALID_STATE, "cannot read maps of QEMU pid " + pid, e);
        }
        return parseMaps(lines);
    }

    /** Picks the shared {@code pc.ram} mapping out of {@code /proc/PID/maps} lines. */
    static Optional<Path> parseMaps(List<String> lines) {
        for (String line : lines) {
            String[] f = line.trim().split("\\s+", 6);
            if (f.length == 6 && f[1].length() == 4 && f[1].charAt(3) == 's') {
                String path = f[5].endsWith(" (deleted)") ? f[5].substring(0, f[5].length() - 10) : f[5];
                if (path.endsWith("/pc.ram")) {
                    return Optional.of(Path.of(path));
                }
            }
        }
        return Optional.empty();
    }
}
