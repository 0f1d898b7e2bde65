package dev.colo.lab;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Properties;

/**
 * The test guest built by {@code scripts/build-guest-image}: a Debian cloud kernel and a busybox
 * initramfs serving HTTP on port 80 (static page and {@code /cgi-bin/counter}, whose count lives in
 * guest RAM) and a TCP echo on port 7. Its address comes from {@code colo.ip=} on the command line.
 */
public record TestGuest(Path dir) {
    public static TestGuest locate() {
        return new TestGuest(Lab.buildDir().resolve("guest"));
    }

    public Path kernel() {
        return dir.resolve("vmlinuz");
    }

    public Path initrd() {
        return dir.resolve("initrd.img");
    }

    /** The kernel command line without the address, from guest.env. */
    public String baseCmdline() {
        Properties p = new Properties();
        try (var in = Files.newBufferedReader(dir.resolve("guest.env"))) {
            p.load(in);
        } catch (IOException e) {
            return "console=ttyS0 panic=-1 quiet";
        }
        String v = p.getProperty("KERNEL_CMDLINE_BASE", "console=ttyS0 panic=-1 quiet");
        return v.replaceAll("^[\"']|[\"']$", "");
    }

    /**
     * A libvirt domain for the guest. {@code nicXml} is the whole {@code <interface>} element;
     * {@code sharedMemory} adds file-backed shared RAM; {@code extra} is appended inside
     * {@code <domain>} (e.g. a qemu:commandline block).
     */
    public String domainXml(String name, int memoryMiB, String ipCidr, String nicXml, boolean sharedMemory, String extra) {
        String memoryBacking = sharedMemory
                ? "  <memoryBacking><source type='file'/><access mode='shared'/></memoryBacking>\n" : "";
        return "<domain type='qemu' xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'>\n"
                + "  <name>" + name + "</name>\n"
                + "  <memory unit='MiB'>" + memoryMiB + "</memory>\n"
                + memoryBacking
                + "  <vcpu>1</vcpu>\n"
                + "  <os><type arch='x86_64' machine='pc'>hvm</type>\n"
                + "    <kernel>" + kernel() + "</kernel><initrd>" + initrd() + "</initrd>\n"
                + "    <cmdline>" + baseCmdline() + " colo.ip=" + ipCidr + "</cmdline></os>\n"
                + "  <features><acpi/></features>\n"
                + "  <on_poweroff>destroy</on_poweroff><on_reboot>destroy</on_reboot><on_crash>destroy</on_crash>\n"
                + "  <devices>\n"
                + "    <emulator>/usr/bin/qemu-system-x86_64</emulator>\n"
                + "    " + nicXml + "\n"
                + "    <serial type='pty'><target port='0'/></serial>\n"
                + "    <controller type='usb' model='none'/>\n"
                + "    <memballoon model='none'/>\n"
                + "  </devices>\n"
                + (extra == null ? "" : extra)
                + "</domain>\n";
    }

    /** An {@code <interface type='ethernet'>} on an existing tap the caller created. */
    public static String tapNic(String tap, String mac) {
        return "<interface type='ethernet'><mac address='" + mac + "'/><target dev='" + tap + "' managed='no'/>"
                + "<model type='virtio'/></interface>";
    }
}
