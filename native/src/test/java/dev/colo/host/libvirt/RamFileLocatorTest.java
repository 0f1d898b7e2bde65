package dev.colo.host.libvirt;

import static org.assertj.core.api.Assertions.assertThat;

import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;

class RamFileLocatorTest {
    @Test
    void findsTheSharedPcRamMappingAmongOthers() {
        List<String> maps = List.of(
                "55d0c0a00000-55d0c0b00000 r-xp 00000000 fe:01 123 /usr/bin/qemu-system-x86_64",
                "7f0000000000-7f0008000000 rw-p 00000000 00:00 0 ",
                "7f1000000000-7f1008000000 rw-s 00000000 00:1a 77 /dev/shm/colo-libvirt-ram/4-web1/pc.ram",
                "7f2000000000-7f2000001000 rw-s 00000000 00:1a 78 /dev/shm/other/file");
        assertThat(RamFileLocator.parseMaps(maps)).contains(Path.of("/dev/shm/colo-libvirt-ram/4-web1/pc.ram"));
    }

    @Test
    void ignoresPrivateMappingsAndStripsDeleted() {
        assertThat(RamFileLocator.parseMaps(List.of("7f1000000000-7f1008000000 rw-p 00000000 00:1a 77 /x/pc.ram"))).isEmpty();
        assertThat(RamFileLocator.parseMaps(List.of("7f1000000000-7f1008000000 rw-s 00000000 00:1a 77 /x y/pc.ram (deleted)")))
                .contains(Path.of("/x y/pc.ram"));
        assertThat(RamFileLocator.parseMaps(List.of("garbage", ""))).isEmpty();
    }
}
