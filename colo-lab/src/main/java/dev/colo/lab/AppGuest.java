package dev.colo.lab;

import dev.colo.host.posix.Command;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.time.Duration;
import java.util.Properties;

/**
 * The web + SQL test guest built by {@code scripts/build-app-guest-image}: nginx and PHP in front
 * of PostgreSQL 15 whose cluster lives on its own virtio disk (vdb, qcow2, fsync on), serving the
 * students application ({@code GET /}, {@code POST /students}, {@code /students.txt},
 * {@code /health}). Its root (vda) is a raw image attached read-only, the same file on both hosts.
 */
public record AppGuest(Path dir) {
    public static final int MEMORY_MIB = 384;

    public static AppGuest locate() {
        return new AppGuest(Lab.buildDir().resolve("app-guest"));
    }

    public boolean built() {
        return Files.isRegularFile(dir.resolve("root.img")) && Files.isRegularFile(dir.resolve("data.qcow2"));
    }

    private String baseCmdline() {
        Properties p = new Properties();
        try (var in = Files.newBufferedReader(dir.resolve("app-guest.env"))) {
            p.load(in);
        } catch (IOException e) {
            return "console=ttyS0 panic=-1 quiet";
        }
        return p.getProperty("KERNEL_CMDLINE_BASE", "console=ttyS0 panic=-1 quiet").replaceAll("^[\"']|[\"']$", "");
    }

    /** A fresh copy of the pristine data disk (the initdb'ed, cleanly shut down cluster) at {@code file}. */
    public Path copyDataDisk(Path file) throws IOException {
        Files.copy(dir.resolve("data.qcow2"), file, StandardCopyOption.REPLACE_EXISTING);
        return file;
    }

    /** An empty raw disk of {@code bytes} (for tests that need a disk but not the database). */
    public static Path emptyRawDisk(Path file, long bytes) {
        Command.run(Duration.ofSeconds(30), "qemu-img", "create", "-q", "-f", "raw", file.toString(), Long.toString(bytes)).orThrow();
        return file;
    }

    /**
     * A libvirt domain for the guest, as an operator would define it: vda the shared root
     * (read-only), vdb {@code dataDisk} (qcow2, virtio, writable), the given NIC, TCG.
     */
    public String domainXml(String name, String ipCidr, String nicXml, Path dataDisk, String dataFormat) {
        return "<domain type='qemu'>\n"
                + "  <name>" + name + "</name>\n"
                + "  <memory unit='MiB'>" + MEMORY_MIB + "</memory>\n"
                + "  <vcpu>1</vcpu>\n"
                + "  <os><type arch='x86_64' machine='pc'>hvm</type>\n"
                + "    <kernel>" + dir.resolve("vmlinuz") + "</kernel><initrd>" + dir.resolve("initrd.img") + "</initrd>\n"
                + "    <cmdline>" + baseCmdline() + " colo.ip=" + ipCidr + "</cmdline></os>\n"
                + "  <features><acpi/></features>\n"
                + "  <on_poweroff>destroy</on_poweroff><on_reboot>destroy</on_reboot><on_crash>destroy</on_crash>\n"
                + "  <devices>\n"
                + "    <emulator>/usr/bin/qemu-system-x86_64</emulator>\n"
                + "    <disk type='file' device='disk'><driver name='qemu' type='raw'/><source file='" + dir.resolve("root.img") + "'/>"
                + "<target dev='vda' bus='virtio'/><readonly/></disk>\n"
                + "    <disk type='file' device='disk'><driver name='qemu' type='" + dataFormat + "'/><source file='" + dataDisk + "'/>"
                + "<target dev='vdb' bus='virtio'/></disk>\n"
                + "    " + nicXml + "\n"
                + "    <serial type='pty'><target port='0'/></serial>\n"
                + "    <controller type='usb' model='none'/>\n"
                + "    <memballoon model='none'/>\n"
                + "  </devices>\n"
                + "</domain>\n";
    }
}
