package dev.colo.daemon.config;

import java.io.IOException;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.regex.Pattern;

/**
 * Reads the daemon's INI-style config: {@code [section]} headers, {@code key = value} lines, {@code #}
 * comments. Every problem is reported with the file, line, section and key, and what was expected;
 * unknown sections and keys are errors (a typo must not silently fall back to a default).
 */
public final class ConfigParser {
    private static final Map<String, Set<String>> KEYS = Map.of(
            "node", Set.of("name", "role"),
            "peer", Set.of("name", "link"),
            "link", Set.of("listen", "certificate", "key", "ca", "heartbeat-interval-ms", "heartbeat-timeout-ms"),
            "witness", Set.of("address", "timeout-ms"),
            "control", Set.of("socket"),
            "metrics", Set.of("listen"),
            "libvirt", Set.of("uri", "accelerator", "vm-netns"),
            "vm", Set.of("domain", "tap", "bridge", "ip", "proxy-port", "compare-timeout-ms", "max-interval-ms", "codec",
                    "reprotect-backoff-ms", "pair-on-start", "reuse-svm",
                    "compare-http-date"),
            "disks", Set.of("dir", "nbd-dir", "log-trigger-mib", "log-limit-mib"));
    private static final Pattern NAME = Pattern.compile("[A-Za-z0-9][A-Za-z0-9_.-]{0,63}");
    private static final Pattern IFNAME = Pattern.compile("[A-Za-z0-9_.-]{1,15}");
    private static final Pattern IPV4 = Pattern.compile("(\\d{1,3})\\.(\\d{1,3})\\.(\\d{1,3})\\.(\\d{1,3})");

    private record Entry(String value, int line) {}

    private final String file;
    private final Map<String, Map<String, Entry>> sections = new LinkedHashMap<>();

    private ConfigParser(String file) {
        this.file = file;
    }

    public static DaemonConfig load(Path path) throws ConfigException {
        String text;
        try {
            text = Files.readString(path, StandardCharsets.UTF_8);
        } catch (NoSuchFileException e) {
            throw new ConfigException(path + ": config file not found (create it from docs/operations.md, or pass --config)");
        } catch (IOException e) {
            throw new ConfigException(path + ": cannot read config file: " + e.getMessage());
        }
        return parse(path.toString(), text);
    }

    public static DaemonConfig parse(String file, String text) throws ConfigException {
        ConfigParser p = new ConfigParser(file);
        p.read(text);
        return p.build();
    }

    private void read(String text) throws ConfigException {
        String section = null;
        List<String> lines = text.lines().toList();
        for (int i = 0; i < lines.size(); i++) {
            int n = i + 1;
            String line = lines.get(i).strip();
            if (line.isEmpty() || line.startsWith("#") || line.startsWith(";")) {
                continue;
            }
            if (line.startsWith("[")) {
                if (!line.endsWith("]")) {
                    throw error(n, "section header must look like [name], got '" + line + "'");
                }
                section = line.substring(1, line.length() - 1).strip();
                if (!KEYS.containsKey(section)) {
                    throw error(n, "unknown section [" + section + "]; known: " + String.join(", ", KEYS.keySet().stream().sorted().toList()));
                }
                if (sections.containsKey(section)) {
                    throw error(n, "section [" + section + "] appears twice");
                }
                sections.put(section, new LinkedHashMap<>());
                continue;
            }
            int eq = line.indexOf('=');
            if (eq < 0) {
                throw error(n, "expected 'key = value', got '" + line + "'");
            }
            if (section == null) {
                throw error(n, "'" + line + "' is outside any [section]");
            }
            String key = line.substring(0, eq).strip();
            String value = stripComment(line.substring(eq + 1)).strip();
            if (!KEYS.get(section).contains(key)) {
                throw error(n, "unknown key '" + key + "' in [" + section + "]; known: "
                        + String.join(", ", KEYS.get(section).stream().sorted().toList()));
            }
            if (sections.get(section).put(key, new Entry(value, n)) != null) {
                throw error(n, "[" + section + "] " + key + " is set twice");
            }
        }
    }

    private static String stripComment(String v) {
        int hash = v.indexOf(" #");
        return hash >= 0 ? v.substring(0, hash) : v;
    }

    private ConfigException error(int line, String what) {
        return new ConfigException(file + ":" + line + ": " + what);
    }

    private ConfigException error(String section, String key, String what) {
        Entry e = sections.getOrDefault(section, Map.of()).get(key);
        return e == null ? new ConfigException(file + ": [" + section + "] " + key + ": " + what)
                : new ConfigException(file + ":" + e.line() + ": [" + section + "] " + key + ": " + what);
    }

    private Optional<String> opt(String section, String key) {
        Entry e = sections.getOrDefault(section, Map.of()).get(key);
        return e == null || e.value().isEmpty() ? Optional.empty() : Optional.of(e.value());
    }

    private String req(String section, String key) throws ConfigException {
        Optional<String> v = opt(section, key);
        if (v.isEmpty()) {
            throw error(section, key, "required but missing");
        }
        return v.get();
    }

    private String name(String section, String key, Pattern pattern, String what) throws ConfigException {
        String v = req(section, key);
        if (!pattern.matcher(v).matches()) {
            throw error(section, key, "must be " + what + ", got '" + v + "'");
        }
        return v;
    }

    private long millis(String section, String key, long dflt, long min, long max) throws ConfigException {
        return number(section, key, dflt, min, max, "a whole number of milliseconds");
    }

    private long number(String section, String key, long dflt, long min, long max, String what) throws ConfigException {
        Optional<String> v = opt(section, key);
        if (v.isEmpty()) {
            return dflt;
        }
        try {
            long x = Long.parseLong(v.get());
            if (x < min || x > max) {
                throw error(section, key, "must be between " + min + " and " + max + ", got " + x);
            }
            return x;
        } catch (NumberFormatException e) {
            throw error(section, key, "must be " + what + ", got '" + v.get() + "'");
        }
    }

    private InetSocketAddress address(String section, String key, String value) throws ConfigException {
        int colon = value.lastIndexOf(':');
        if (colon <= 0) {
            throw error(section, key, "must be HOST:PORT, got '" + value + "'");
        }
        String host = value.substring(0, colon);
        if (!IPV4.matcher(host).matches()) {
            throw error(section, key, "host must be an IPv4 address (no name lookups at start-up), got '" + host + "'");
        }
        checkIpv4(section, key, host);
        try {
            int port = Integer.parseInt(value.substring(colon + 1));
            if (port < 1 || port > 65535) {
                throw error(section, key, "port must be 1-65535, got " + port);
            }
            return new InetSocketAddress(host, port); // an IPv4 literal: no lookup
        } catch (NumberFormatException e) {
            throw error(section, key, "port must be a number, got '" + value.substring(colon + 1) + "'");
        }
    }

    private String ipv4(String section, String key) throws ConfigException {
        String v = req(section, key);
        if (!IPV4.matcher(v).matches()) {
            throw error(section, key, "must be an IPv4 address, got '" + v + "'");
        }
        checkIpv4(section, key, v);
        return v;
    }

    private void checkIpv4(String section, String key, String v) throws ConfigException {
        for (String octet : v.split("\\.")) {
            if (Integer.parseInt(octet) > 255) {
                throw error(section, key, "'" + v + "' is not an IPv4 address");
            }
        }
    }

    private Path file(String section, String key) throws ConfigException {
        Path p = Path.of(req(section, key));
        if (!p.isAbsolute()) {
            throw error(section, key, "must be an absolute path, got '" + p + "'");
        }
        return p;
    }

    private Path readableFile(String section, String key, String hint) throws ConfigException {
        Path p = file(section, key);
        if (!Files.exists(p, java.nio.file.LinkOption.NOFOLLOW_LINKS)) {
            throw error(section, key, p + " does not exist (" + hint + ")");
        }
        return p;
    }

    private Path certificateFile(String key) throws ConfigException {
        return readableFile("link", key, "create the pair's certificates with 'colo certs create'");
    }

    private boolean bool(String section, String key, boolean dflt) throws ConfigException {
        Optional<String> v = opt(section, key);
        if (v.isEmpty()) {
            return dflt;
        }
        return switch (v.get()) {
            case "true", "yes", "on" -> true;
            case "false", "no", "off" -> false;
            default -> throw error(section, key, "must be true or false, got '" + v.get() + "'");
        };
    }

    private DaemonConfig build() throws ConfigException {
        String nodeName = name("node", "name", NAME, "a node name (letters, digits, . _ -)");
        String role = req("node", "role");
        DaemonConfig.Role r = switch (role) {
            case "primary" -> DaemonConfig.Role.PRIMARY;
            case "secondary" -> DaemonConfig.Role.SECONDARY;
            default -> throw error("node", "role", "must be primary or secondary, got '" + role + "'");
        };
        String peerName = name("peer", "name", NAME, "a node name (letters, digits, . _ -)");
        if (peerName.equals(nodeName)) {
            throw error("peer", "name", "must differ from [node] name '" + nodeName + "'");
        }
        InetSocketAddress peerLink = address("peer", "link", req("peer", "link"));
        long hbInterval = millis("link", "heartbeat-interval-ms", 100, 10, 10_000);
        long hbTimeout = millis("link", "heartbeat-timeout-ms", 500, 50, 60_000);
        if (hbTimeout < 3 * hbInterval) {
            throw error("link", "heartbeat-timeout-ms", "must be at least 3 heartbeat intervals (" + 3 * hbInterval + " ms), got " + hbTimeout);
        }
        DaemonConfig.Link link = new DaemonConfig.Link(address("link", "listen", req("link", "listen")), certificateFile("certificate"),
                certificateFile("key"), certificateFile("ca"), hbInterval, hbTimeout);
        DaemonConfig.Witness witness = new DaemonConfig.Witness(ipv4("witness", "address"), millis("witness", "timeout-ms", 200, 10, 10_000));
        Path control = opt("control", "socket").isPresent() ? file("control", "socket") : Path.of("/run/colo/colo.sock");
        Optional<InetSocketAddress> metrics = Optional.empty();
        String m = opt("metrics", "listen").orElse("127.0.0.1:9467");
        if (!m.equals("off")) {
            metrics = Optional.of(address("metrics", "listen", m));
        }
        Optional<String> accel = opt("libvirt", "accelerator");
        if (accel.isPresent() && !Set.of("kvm", "tcg").contains(accel.get())) {
            throw error("libvirt", "accelerator", "must be kvm or tcg, got '" + accel.get() + "'");
        }
        Optional<Path> vmNetns = opt("libvirt", "vm-netns").isPresent() ? Optional.of(readableFile("libvirt", "vm-netns",
                "a network namespace file such as /proc/1/ns/net or /var/run/netns/NAME")) : Optional.empty();
        DaemonConfig.Libvirt libvirt = new DaemonConfig.Libvirt(opt("libvirt", "uri").orElse("qemu:///system"), accel, vmNetns);
        String codec = opt("vm", "codec").orElse("lz4");
        if (!Set.of("raw", "lz4", "zstd").contains(codec)) {
            throw error("vm", "codec", "must be raw, lz4 or zstd, got '" + codec + "'");
        }
        long port = number("vm", "proxy-port", 7460, 1, 65535, "a TCP port number");
        DaemonConfig.Vm vm = new DaemonConfig.Vm(name("vm", "domain", NAME, "a libvirt domain name"), name("vm", "tap", IFNAME,
                "an interface name of at most 15 characters"), opt("vm", "bridge"), ipv4("vm", "ip"), (int) port,
                millis("vm", "compare-timeout-ms", 3_000, 10, 600_000), millis("vm", "max-interval-ms", 10_000, 100, 3_600_000), codec,
                millis("vm", "reprotect-backoff-ms", 2_000, 100, 600_000), bool("vm", "pair-on-start", false),
                bool("vm", "reuse-svm", true), bool("vm", "compare-http-date", false));
        if (vm.bridge().isPresent() && !IFNAME.matcher(vm.bridge().get()).matches()) {
            throw error("vm", "bridge", "must be an interface name of at most 15 characters, got '" + vm.bridge().get() + "'");
        }
        DaemonConfig.Disks defaults = DaemonConfig.Disks.defaults();
        long trigger = number("disks", "log-trigger-mib", defaults.logTriggerBytes() >> 20, 1, 1 << 16, "a whole number of MiB");
        long limit = number("disks", "log-limit-mib", defaults.logLimitBytes() >> 20, 1, 1 << 20, "a whole number of MiB");
        if (limit < trigger) {
            throw error("disks", "log-limit-mib", "must be at least log-trigger-mib (" + trigger + "), got " + limit);
        }
        DaemonConfig.Disks disks = new DaemonConfig.Disks(opt("disks", "dir").isPresent() ? file("disks", "dir") : defaults.dir(),
                opt("disks", "nbd-dir").isPresent() ? file("disks", "nbd-dir") : defaults.nbdDir(), trigger << 20, limit << 20);
        return new DaemonConfig(new DaemonConfig.Node(nodeName, r), new DaemonConfig.Peer(peerName, peerLink), link, witness, control,
                metrics, libvirt, vm, disks);
    }
}
