package dev.colo.lab;

import dev.colo.host.posix.Command;

import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;

/**
 * The real lab the integration tests need: root, a running libvirtd, QEMU and the test guest image,
 * all provided by {@code scripts/setup}. {@link #require()} fails with what is missing and how to fix
 * it, instead of skipping: an integration test that silently skips proves nothing.
 */
public final class Lab {
    private Lab() {}

    public static Path repoRoot() {
        String prop = System.getProperty("colo.repo.root");
        if (prop != null && Files.isDirectory(Path.of(prop, "scripts"))) {
            return Path.of(prop);
        }
        Path p = Path.of("").toAbsolutePath();
        while (p != null) {
            if (Files.isRegularFile(p.resolve("scripts/setup"))) {
                return p;
            }
            p = p.getParent();
        }
        throw new IllegalStateException("cannot find the colo repository root (no scripts/setup above " + Path.of("").toAbsolutePath() + ")");
    }

    public static Path buildDir() {
        String env = System.getenv("COLO_BUILD_DIR");
        return env != null && !env.isBlank() ? Path.of(env) : repoRoot().resolve("build");
    }

    public static void require() {
        StringBuilder missing = new StringBuilder();
        if (!"root".equals(System.getProperty("user.name"))) {
            missing.append("\n - tests must run as root (tap devices, namespaces, libvirt)");
        }
        if (!Files.exists(Path.of("/run/libvirt/libvirt-sock"))) {
            missing.append("\n - libvirtd is not running (/run/libvirt/libvirt-sock missing); run scripts/lab-up");
        }
        if (!Files.isExecutable(Path.of("/usr/bin/qemu-system-x86_64"))) {
            missing.append("\n - qemu-system-x86_64 is not installed; run scripts/setup");
        }
        TestGuest g = TestGuest.locate();
        if (!Files.isRegularFile(g.kernel()) || !Files.isRegularFile(g.initrd())) {
            missing.append("\n - the test guest image is missing under ").append(g.dir()).append("; run scripts/setup");
        }
        if (missing.length() > 0) {
            throw new IllegalStateException("the lab is not ready:" + missing);
        }
    }

    /** Deletes leftovers of earlier runs that died before their cleanup (domains named colo-it-*). */
    public static void sweepStaleDomains(String prefix) {
        Command.Result r = Command.run(Duration.ofSeconds(20), "virsh", "-c", "qemu:///system", "list", "--all", "--name");
        for (String line : r.out().split("\n")) {
            String name = line.trim();
            if (name.startsWith(prefix)) {
                Command.run(Duration.ofSeconds(20), "virsh", "-c", "qemu:///system", "destroy", name);
                Command.run(Duration.ofSeconds(20), "virsh", "-c", "qemu:///system", "undefine", name);
            }
        }
    }
}
