package dev.colo.testkit;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.JsonNodeFactory;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.colo.hypervisor.Blocking;
import dev.colo.hypervisor.DeviceState;
import dev.colo.hypervisor.DiskMirror;
import dev.colo.hypervisor.MirrorTarget;
import dev.colo.hypervisor.DomainRef;
import dev.colo.hypervisor.DomainState;
import dev.colo.hypervisor.GuestRam;
import dev.colo.hypervisor.Hypervisor;
import dev.colo.hypervisor.HypervisorException;
import dev.colo.hypervisor.HypervisorException.Kind;
import dev.colo.hypervisor.LifecycleEvent;
import dev.colo.hypervisor.LifecycleListener;
import dev.colo.hypervisor.QmpException;
import dev.colo.hypervisor.ReusableSvm;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.TreeMap;
import java.util.UUID;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * The hypervisor port in memory, for scenario tests. A domain's RAM is a byte array and its
 * "device state" is a blob the test controls. It enforces the rules real QEMU enforces: state loads
 * only into a paused {@code -incoming defer} standby and only once; RAM is shared only when the XML
 * says so; guests write RAM only while running. Faults are injected per domain and command, and time
 * costs are declared rather than slept, so tests stay deterministic.
 */
public final class SimulatedHypervisor implements Hypervisor {
    private static final Pattern NAME = Pattern.compile("<name>\\s*([^<]+?)\\s*</name>");
    private static final Pattern UUID_TAG = Pattern.compile("<uuid>\\s*([^<]+?)\\s*</uuid>");
    private static final Pattern MEMORY = Pattern.compile("<memory(?:\\s+unit=['\"](\\w+)['\"])?\\s*>\\s*(\\d+)\\s*</memory>");

    /** One simulated domain. */
    private static final class Sim {
        final String name;
        final String uuid;
        String xml;
        DomainState state = DomainState.SHUTOFF;
        byte[] ram = new byte[0];
        byte[] deviceState = new byte[0];
        boolean incoming;
        boolean loaded;
        boolean postMigrate;
        /** The guest has run in this process (a loaded standby's first cont starts it from its RAM). */
        boolean guestRan;
        /** Loaded as a reusable SVM and not released: it takes checkpoints in place. */
        boolean colo;
        /** The guest's disks by target name: its {@code <disk>} files, or declared by a test with {@link #addDisk}. */
        final Map<String, byte[]> disks = new LinkedHashMap<>();
        /** SVM disks on QEMU's replication driver (colo's copy beneath, the SVM's own writes above), by target. */
        final Map<String, Replica> replicas = new LinkedHashMap<>();
        /** Where each mirrored disk's writes go (QEMU's write-blocking mirror: before the guest sees them complete). */
        final Map<String, MirrorTarget> mirrors = new HashMap<>();

        Sim(String name, String uuid, String xml) {
            this.name = name;
            this.uuid = uuid;
            this.xml = xml;
        }

        DomainRef ref() {
            return new DomainRef(name, uuid);
        }

        boolean sharedRam() {
            return xml.contains("<source type='file'/>") || xml.contains("<source type=\"file\"/>");
        }
    }

    /**
     * An SVM disk as QEMU's replication driver in secondary mode keeps it: reads see the SVM's own
     * writes over colo's copy; a COLO checkpoint empties the overlay (make_empty), a failover
     * commits it into the copy and from then on the copy is the disk.
     */
    private static final class Replica {
        final byte[] base;
        final TreeMap<Long, byte[]> overlay = new TreeMap<>();
        boolean failedOver;

        Replica(byte[] base) {
            this.base = base;
        }

        void write(long offset, byte[] data) {
            if (failedOver) {
                System.arraycopy(data, 0, base, (int) offset, data.length);
            } else {
                overlay.put(offset, data);
            }
        }

        byte[] view() {
            byte[] v = base.clone();
            overlay.forEach((at, d) -> System.arraycopy(d, 0, v, at.intValue(), d.length));
            return v;
        }

        void commit() {
            overlay.forEach((at, d) -> System.arraycopy(d, 0, base, at.intValue(), d.length));
            overlay.clear();
            failedOver = true;
        }
    }

    /** The host's disk image files the domains' disks are backed by (a path to its bytes, or null). */
    public interface DiskFiles {
        byte[] file(String path);
    }

    private static final Pattern DISK = Pattern.compile("<disk [^>]*>(.*?)</disk>", Pattern.DOTALL);
    private static final Pattern DISK_SOURCE = Pattern.compile("<source [^>]*?file=['\"]([^'\"]+)['\"]");
    private static final Pattern DISK_TARGET = Pattern.compile("<target [^>]*?dev=['\"]([^'\"]+)['\"]");
    private static final Pattern REPLICA_BASE = Pattern.compile("id=colo-base-([^,]+),[^'\"]*?file\\.filename=([^,'\"]+)");
    private DiskFiles diskFiles = path -> null;

    /** Where the domains' disk files are: a {@code <disk>}'s source and an SVM's copy beneath its overlays. */
    public synchronized void setDiskFiles(DiskFiles files) {
        this.diskFiles = files;
    }

    private void attachDisks(Sim s) {
        s.disks.clear();
        s.replicas.clear();
        Matcher d = DISK.matcher(s.xml);
        while (d.find()) {
            String body = d.group(1);
            Matcher src = DISK_SOURCE.matcher(body);
            Matcher tgt = DISK_TARGET.matcher(body);
            if (!body.contains("<readonly") && src.find() && tgt.find()) {
                byte[] file = diskFiles.file(src.group(1));
                if (file != null) {
                    s.disks.put(tgt.group(1), file);
                }
            }
        }
        Matcher r = REPLICA_BASE.matcher(s.xml);
        while (r.find()) {
            byte[] base = diskFiles.file(r.group(2));
            if (base == null) {
                throw new HypervisorException(Kind.FAILED, "QEMU: could not open disk image " + r.group(2) + ": No such file or directory");
            }
            s.replicas.put(r.group(1), new Replica(base));
        }
    }

    private final Map<String, Sim> byUuid = new LinkedHashMap<>();
    private final CopyOnWriteArrayList<LifecycleListener> listeners = new CopyOnWriteArrayList<>();
    private final Map<String, Set<String>> qmpTimeouts = new HashMap<>();
    private final Map<String, Duration> saveCost = new HashMap<>();
    private final Set<String> truncateNextLoad = new HashSet<>();
    private final List<String> qmpLog = new ArrayList<>();
    private boolean available = true;
    private boolean closed;
    private long defined;
    private GuestHooks guests = new GuestHooks() { };
    private java.util.function.LongConsumer charge = ns -> { };
    private final Map<String, Long> costNs = new HashMap<>();

    /**
     * What runs inside the simulated domains (the pair simulation's guest models): told when a
     * domain starts, is about to pause (it may still write its RAM), runs again (after a load, it
     * starts from what the RAM holds) and stops.
     */
    public interface GuestHooks {
        default void started(DomainRef domain, String xml, boolean paused) {
        }

        default void pausing(DomainRef domain) {
        }

        default void resumed(DomainRef domain, boolean loadedFromState) {
        }

        default void stopped(DomainRef domain) {
        }

        /**
         * A reusable SVM loaded a checkpoint in place and runs again: its guest starts over from
         * what the RAM holds, while what waited unread in its NIC socket stays there.
         */
        default void reloaded(DomainRef domain) {
        }
    }

    public synchronized void setGuestHooks(GuestHooks hooks) {
        this.guests = hooks;
    }

    /**
     * Declares what operations cost in (simulated) time: each call of {@code operation} ("define",
     * "start", "stop", "cont", "migrate", "migrate-incoming", "map") charges its cost to
     * {@code charge}, e.g. the simulated world's running task.
     */
    public synchronized void setCosts(java.util.function.LongConsumer charge, Map<String, Long> costs) {
        this.charge = charge;
        this.costNs.clear();
        this.costNs.putAll(costs);
    }

    private void cost(String operation) {
        Long c = costNs.get(operation);
        if (c != null) {
            charge.accept(c);
        }
    }

    // --- fault injection and guest behaviour (test-facing) ---

    /** Every QMP {@code command} on {@code domain} times out from now on. */
    public synchronized void injectQmpTimeout(String domainName, String command) {
        qmpTimeouts.computeIfAbsent(domainName, k -> new HashSet<>()).add(command);
    }

    public synchronized void clearFaults() {
        qmpTimeouts.clear();
        saveCost.clear();
        truncateNextLoad.clear();
        available = true;
    }

    /** Declares how long a device-state save of {@code domain} takes; a timeout shorter fails. */
    public synchronized void injectSlowSave(String domainName, Duration cost) {
        saveCost.put(domainName, cost);
    }

    /** The next load into {@code domain} sees its stream cut in the middle. */
    public synchronized void injectCutStream(String domainName) {
        truncateNextLoad.add(domainName);
    }

    /** Simulates libvirtd going down ({@code false}) or coming back. */
    public synchronized void setAvailable(boolean up) {
        available = up;
    }

    /** The QEMU process of {@code domain} dies, as with kill -9. */
    public void crash(String domainName) {
        LifecycleEvent e;
        synchronized (this) {
            Sim s = byName(domainName).orElseThrow();
            if (s.state.isActive()) {
                guests.stopped(s.ref());
            }
            s.state = DomainState.SHUTOFF;
            s.ram = new byte[0];
            s.mirrors.clear();
            e = new LifecycleEvent(s.ref(), LifecycleEvent.Kind.CRASHED, "killed");
        }
        fire(e);
    }

    /** The guest writes its RAM; only a running guest can. */
    public synchronized void guestWrite(String domainName, long offset, byte[] data) {
        Sim s = byName(domainName).orElseThrow();
        if (s.state != DomainState.RUNNING) {
            throw new IllegalStateException("guest " + domainName + " is " + s.state + " and cannot write RAM");
        }
        System.arraycopy(data, 0, s.ram, (int) offset, data.length);
    }

    /** Gives {@code domain} a disk {@code target} of {@code size} zero bytes. */
    public synchronized void addDisk(String domainName, String target, int size) {
        byName(domainName).orElseThrow().disks.put(target, new byte[size]);
    }

    /**
     * The guest writes its disk and the write completes: with a mirror attached, the mirror target
     * has it before this returns, as with QEMU's write-blocking mirror. {@code data} null: zeroes.
     */
    public synchronized void guestDiskWrite(String domainName, String target, long offset, long length, byte[] data) {
        Sim s = byName(domainName).orElseThrow();
        if (s.state != DomainState.RUNNING) {
            throw new IllegalStateException("guest " + domainName + " is " + s.state + " and cannot write its disk");
        }
        Replica replica = s.replicas.get(target);
        if (replica != null) {
            replica.write(offset, data == null ? new byte[(int) length] : data.clone());
            return;
        }
        byte[] disk = s.disks.get(target);
        if (data == null) {
            java.util.Arrays.fill(disk, (int) offset, (int) (offset + length), (byte) 0);
        } else {
            System.arraycopy(data, 0, disk, (int) offset, data.length);
        }
        MirrorTarget m = s.mirrors.get(target);
        if (m != null) {
            m.write(offset, length, data == null ? null : data.clone());
        }
    }

    /** What the guest of {@code domainName} reads on disk {@code target}; null when it has no such disk. */
    public synchronized byte[] guestDisk(String domainName, String target) {
        Sim s = byName(domainName).orElseThrow();
        Replica r = s.replicas.get(target);
        if (r != null) {
            return r.view();
        }
        byte[] d = s.disks.get(target);
        return d == null ? null : d.clone();
    }

    /** Whether the guest of {@code domainName} has a disk {@code target} (a test's guest writes it only then). */
    public synchronized boolean hasDisk(String domainName, String target) {
        Sim s = byName(domainName).orElse(null);
        return s != null && (s.disks.containsKey(target) || s.replicas.containsKey(target));
    }

    public synchronized byte[] guestRead(String domainName, long offset, int length) {
        Sim s = byName(domainName).orElseThrow();
        byte[] out = new byte[length];
        System.arraycopy(s.ram, (int) offset, out, 0, length);
        return out;
    }

    /** Sets the CPU/device state the next save returns; a running guest changes it as it runs. */
    public synchronized void setDeviceState(String domainName, String state) {
        byName(domainName).orElseThrow().deviceState = state.getBytes(StandardCharsets.UTF_8);
    }

    public synchronized String deviceStateOf(String domainName) {
        return new String(byName(domainName).orElseThrow().deviceState, StandardCharsets.UTF_8);
    }

    /** Every QMP command issued so far, as {@code domain:command}. */
    public synchronized List<String> qmpLog() {
        return List.copyOf(qmpLog);
    }

    // --- the port ---

    private void check(String operation) {
        Blocking.assertAllowed(operation);
        if (closed) {
            throw new HypervisorException(Kind.UNAVAILABLE, "simulated hypervisor is closed");
        }
        if (!available) {
            throw new HypervisorException(Kind.UNAVAILABLE, operation + " failed: simulated libvirtd is down");
        }
    }

    private Optional<Sim> byName(String name) {
        return byUuid.values().stream().filter(s -> s.name.equals(name)).findFirst();
    }

    private Sim sim(DomainRef ref) {
        Sim s = byUuid.get(ref.uuid());
        if (s == null) {
            throw new HypervisorException(Kind.DOMAIN_NOT_FOUND, "domain not found: " + ref);
        }
        return s;
    }

    @Override
    public DomainRef define(String domainXml) {
        DomainRef ref;
        synchronized (this) {
            check("define");
            cost("define");
            Matcher n = NAME.matcher(domainXml);
            if (!n.find()) {
                throw new HypervisorException(Kind.UNSUPPORTED_DOMAIN, "domain XML has no <name>");
            }
            Matcher u = UUID_TAG.matcher(domainXml);
            // Without a <uuid> libvirt makes one; here it is derived, so a seeded run replays exactly.
            String uuid = u.find() ? u.group(1) : UUID.nameUUIDFromBytes((n.group(1) + "#" + (++defined)).getBytes(StandardCharsets.UTF_8)).toString();
            Optional<Sim> sameName = byName(n.group(1));
            if (sameName.isPresent() && !sameName.get().uuid.equals(uuid)) {
                throw new HypervisorException(Kind.FAILED, "domain " + n.group(1) + " already exists with uuid " + sameName.get().uuid);
            }
            Sim s = byUuid.computeIfAbsent(uuid, k -> new Sim(n.group(1), k, domainXml));
            s.xml = domainXml;
            ref = s.ref();
        }
        fire(new LifecycleEvent(ref, LifecycleEvent.Kind.DEFINED, "ADDED"));
        return ref;
    }

    @Override
    public void start(DomainRef domain, boolean paused) {
        DomainRef ref;
        synchronized (this) {
            check("start");
            Sim s = sim(domain);
            if (s.state.isActive()) {
                throw new HypervisorException(Kind.INVALID_STATE, "domain " + s.name + " is already running");
            }
            s.ram = new byte[(int) memoryBytes(s.xml)];
            attachDisks(s);
            s.deviceState = ("boot:" + s.name).getBytes(StandardCharsets.UTF_8);
            s.incoming = s.xml.contains("'-incoming'") || s.xml.contains("\"-incoming\"");
            s.loaded = false;
            s.colo = false;
            s.postMigrate = false;
            s.guestRan = !paused;
            s.state = paused ? DomainState.PAUSED : DomainState.RUNNING;
            ref = s.ref();
            cost("start");
            try {
                guests.started(ref, s.xml, paused);
            } catch (RuntimeException e) {
                s.state = DomainState.SHUTOFF; // QEMU exits when it cannot start
                throw e;
            }
        }
        fire(new LifecycleEvent(ref, LifecycleEvent.Kind.STARTED, "BOOTED"));
    }

    static long memoryBytes(String xml) {
        Matcher m = MEMORY.matcher(xml);
        if (!m.find()) {
            throw new HypervisorException(Kind.UNSUPPORTED_DOMAIN, "domain XML has no <memory>");
        }
        long v = Long.parseLong(m.group(2));
        String unit = m.group(1) == null ? "KiB" : m.group(1);
        switch (unit) {
            case "b": case "bytes": return v;
            case "KiB": return v << 10;
            case "MiB": return v << 20;
            case "GiB": return v << 30;
            default: throw new HypervisorException(Kind.UNSUPPORTED_DOMAIN, "unit " + unit);
        }
    }

    @Override
    public void destroy(DomainRef domain) {
        DomainRef ref = null;
        synchronized (this) {
            check("destroy");
            Sim s = sim(domain);
            if (s.state.isActive()) {
                s.state = DomainState.SHUTOFF;
                s.ram = new byte[0];
                ref = s.ref();
                guests.stopped(ref);
            }
        }
        if (ref != null) {
            fire(new LifecycleEvent(ref, LifecycleEvent.Kind.STOPPED, "DESTROYED"));
        }
    }

    @Override
    public void undefine(DomainRef domain) {
        synchronized (this) {
            check("undefine");
            Sim s = sim(domain);
            if (s.state.isActive()) {
                throw new HypervisorException(Kind.INVALID_STATE, "simulated hypervisor keeps no transient domains; destroy " + s.name + " first");
            }
            byUuid.remove(s.uuid);
        }
        fire(new LifecycleEvent(domain, LifecycleEvent.Kind.UNDEFINED, "REMOVED"));
    }

    @Override
    public synchronized java.util.List<DomainRef> list() {
        check("list");
        return byUuid.values().stream().map(x -> new DomainRef(x.name, x.uuid)).toList();
    }

    @Override
    public synchronized Optional<DomainRef> lookup(String nameOrUuid) {
        check("lookup");
        Sim s = byUuid.get(nameOrUuid);
        if (s == null) {
            s = byName(nameOrUuid).orElse(null);
        }
        return Optional.ofNullable(s).map(Sim::ref);
    }

    @Override
    public synchronized DomainState state(DomainRef domain) {
        check("state");
        return sim(domain).state;
    }

    @Override
    public synchronized String describe(DomainRef domain, boolean inactive) {
        check("describe");
        Sim s = sim(domain);
        // libvirt's description always carries the domain's UUID.
        return UUID_TAG.matcher(s.xml).find() ? s.xml : s.xml.replaceFirst("</name>", "</name><uuid>" + s.uuid + "</uuid>");
    }

    @Override
    public AutoCloseable onLifecycle(LifecycleListener listener) {
        listeners.add(listener);
        return () -> listeners.remove(listener);
    }

    private void fire(LifecycleEvent e) {
        for (LifecycleListener l : listeners) {
            l.onLifecycle(e);
        }
    }

    @Override
    public synchronized JsonNode qmp(DomainRef domain, String command, ObjectNode arguments, Duration timeout) {
        check("QMP " + command);
        Sim s = sim(domain);
        qmpLog.add(s.name + ":" + command);
        if (!s.state.isActive()) {
            throw new HypervisorException(Kind.INVALID_STATE, "QMP " + command + " on " + s.name + " failed: domain is not running");
        }
        if (qmpTimeouts.getOrDefault(s.name, Set.of()).contains(command)) {
            throw new HypervisorException(Kind.TIMEOUT, "QMP " + command + " on " + s.name + " got no answer within " + timeout.toMillis() + " ms");
        }
        ObjectNode ret = JsonNodeFactory.instance.objectNode();
        switch (command) {
            case "stop":
                cost("stop");
                if (s.state == DomainState.RUNNING) {
                    guests.pausing(s.ref());
                }
                s.state = DomainState.PAUSED;
                return ret;
            case "cont":
                cost("cont");
                if (s.incoming && !s.loaded) {
                    // As QEMU: cont while waiting for an incoming state is accepted and changes
                    // nothing here; the loaded guest takes the runstate the source saved (paused).
                    return ret;
                }
                boolean wasPaused = s.state == DomainState.PAUSED;
                s.state = DomainState.RUNNING;
                s.postMigrate = false;
                if (wasPaused) {
                    guests.resumed(s.ref(), s.incoming && s.loaded && !s.guestRan);
                    s.guestRan = true;
                }
                return ret;
            case "query-status":
                ret.put("running", s.state == DomainState.RUNNING);
                ret.put("status", s.state == DomainState.RUNNING ? "running" : s.postMigrate ? "postmigrate" : s.incoming && !s.loaded ? "inmigrate" : "paused");
                return ret;
            default:
                throw new QmpException(command, "CommandNotFound", "The command " + command + " has not been found");
        }
    }

    @Override
    public synchronized DeviceState saveDeviceState(DomainRef domain, Duration timeout) {
        check("save device state");
        Sim s = sim(domain);
        qmpLog.add(s.name + ":migrate");
        if (s.state != DomainState.PAUSED) {
            throw new HypervisorException(Kind.INVALID_STATE, "device-state save of " + s.name + " needs a paused domain, it is " + s.state);
        }
        if (!s.sharedRam()) {
            throw new HypervisorException(Kind.UNSUPPORTED_DOMAIN, "domain " + s.name + " has no shared file-backed memory");
        }
        cost("migrate");
        Duration cost = saveCost.getOrDefault(s.name, Duration.ZERO);
        if (cost.compareTo(timeout) > 0) {
            throw new HypervisorException(Kind.TIMEOUT, "device-state save of " + s.name + " did not finish within " + timeout.toMillis() + " ms");
        }
        s.postMigrate = true;
        return new DeviceState(s.deviceState);
    }

    @Override
    public synchronized void loadDeviceState(DomainRef standby, DeviceState state, Duration timeout) {
        check("load device state");
        Sim s = sim(standby);
        qmpLog.add(s.name + ":migrate-incoming");
        cost("migrate-incoming");
        try {
            if (!s.incoming || s.state != DomainState.PAUSED) {
                throw new HypervisorException(Kind.INVALID_STATE, "domain " + s.name + " is not a paused -incoming defer standby");
            }
            if (s.loaded) {
                throw new QmpException("migrate-incoming", "GenericError", "The incoming migration has already been started");
            }
            if (devicesOnly(state)) {
                throw new HypervisorException(Kind.STREAM, "device-state load into " + s.name + " failed: a devices-only save has no ROMs to boot from");
            }
            if (truncateNextLoad.remove(s.name)) {
                throw new HypervisorException(Kind.STREAM, "device-state load into " + s.name + " failed: stream ended after "
                        + state.size() / 2 + " of " + state.size() + " bytes");
            }
        } catch (HypervisorException e) {
            // Real QEMU exits when a load fails; the simulation does the same.
            s.state = DomainState.SHUTOFF;
            throw e;
        }
        s.deviceState = state.bytes();
        s.loaded = true;
    }

    /** What a devices-only save starts with: the simulation refuses to load it anywhere but in place, as QEMU cannot either. */
    private static final String DEVICES_ONLY = "devices-only:";

    @Override
    public synchronized DeviceState saveDevices(DomainRef domain, Duration timeout) {
        check("save devices");
        Sim s = sim(domain);
        qmpLog.add(s.name + ":xen-save-devices-state");
        if (s.state != DomainState.PAUSED) {
            throw new HypervisorException(Kind.INVALID_STATE, "devices-only save of " + s.name + " needs a paused domain, it is " + s.state);
        }
        if (qmpTimeouts.getOrDefault(s.name, Set.of()).contains("xen-save-devices-state")) {
            throw new HypervisorException(Kind.TIMEOUT, "QMP xen-save-devices-state on " + s.name + " got no answer within " + timeout.toMillis() + " ms");
        }
        cost("save-devices");
        byte[] prefix = DEVICES_ONLY.getBytes(StandardCharsets.UTF_8);
        byte[] out = new byte[prefix.length + s.deviceState.length];
        System.arraycopy(prefix, 0, out, 0, prefix.length);
        System.arraycopy(s.deviceState, 0, out, prefix.length, s.deviceState.length);
        return new DeviceState(out);
    }

    private static boolean devicesOnly(DeviceState d) {
        return new String(d.bytes(), StandardCharsets.UTF_8).startsWith(DEVICES_ONLY);
    }

    @Override
    public ReusableSvm loadReusable(DomainRef standby, DeviceState full, Duration timeout) {
        DomainRef ref;
        synchronized (this) {
            Sim s = sim(standby);
            if (devicesOnly(full)) {
                s.state = DomainState.SHUTOFF;
                throw new HypervisorException(Kind.STREAM, "reusable load into " + s.name + " failed: a devices-only save has no ROMs to boot from");
            }
            loadDeviceState(standby, full, timeout);
            qmpLog.add(s.name + ":x-colo");
            // QEMU's COLO secondary runs the SVM itself once it loaded.
            s.colo = true;
            s.state = DomainState.RUNNING;
            s.guestRan = true;
            guests.resumed(s.ref(), true);
            ref = s.ref();
        }
        return new SimReusableSvm(ref);
    }

    /** QEMU's COLO secondary mode as the simulation sees it: stop, load in place, release. */
    private final class SimReusableSvm implements ReusableSvm {
        private final DomainRef ref;
        private boolean broken;

        SimReusableSvm(DomainRef ref) {
            this.ref = ref;
        }

        @Override
        public DomainRef domain() {
            return ref;
        }

        private Sim usable(String what, Duration timeout) {
            check(what);
            Sim s = sim(ref);
            if (broken || !s.colo || !s.state.isActive()) {
                broken = true;
                throw new HypervisorException(Kind.INVALID_STATE, "cannot " + what + " " + s.name + ": its COLO channel is gone");
            }
            if (qmpTimeouts.getOrDefault(s.name, Set.of()).contains(what)) {
                broken = true;
                throw new HypervisorException(Kind.TIMEOUT, "no COLO answer from " + s.name + " to " + what + " within " + timeout.toMillis() + " ms");
            }
            return s;
        }

        @Override
        public void stop(Duration timeout) {
            synchronized (SimulatedHypervisor.this) {
                Sim s = usable("colo-stop", timeout);
                qmpLog.add(s.name + ":colo-stop");
                cost("colo-stop");
                if (s.state == DomainState.RUNNING) {
                    guests.pausing(s.ref());
                }
                s.state = DomainState.PAUSED;
            }
        }

        @Override
        public void load(DeviceState devices, Duration timeout) {
            synchronized (SimulatedHypervisor.this) {
                Sim s = usable("colo-load", timeout);
                qmpLog.add(s.name + ":colo-load");
                if (!devicesOnly(devices)) {
                    broken = true;
                    throw new HypervisorException(Kind.STREAM, "COLO load into " + s.name + " failed: not a devices-only save");
                }
                if (s.state != DomainState.PAUSED) {
                    broken = true;
                    throw new HypervisorException(Kind.INVALID_STATE, "COLO load into " + s.name + " needs it stopped first");
                }
                cost("colo-load");
                byte[] b = devices.bytes();
                int skip = DEVICES_ONLY.getBytes(StandardCharsets.UTF_8).length;
                s.deviceState = java.util.Arrays.copyOfRange(b, skip, b.length);
                s.replicas.values().forEach(r -> r.overlay.clear()); // QEMU's COLO load: replication_do_checkpoint_all
                s.state = DomainState.RUNNING;
                guests.reloaded(s.ref());
            }
        }

        @Override
        public void release(Duration timeout) {
            synchronized (SimulatedHypervisor.this) {
                Sim s = sim(ref);
                qmpLog.add(s.name + ":x-colo-lost-heartbeat");
                s.colo = false;
                s.replicas.values().forEach(Replica::commit); // the replication driver's failover: the SVM keeps its writes
                broken = true;
            }
        }

        @Override
        public void close() {
            broken = true;
        }
    }

    @Override
    public synchronized long diskSize(DomainRef domain, String target, Duration timeout) {
        check("query-block");
        byte[] d = sim(domain).disks.get(target);
        if (d == null) {
            throw new HypervisorException(Kind.UNSUPPORTED_DOMAIN, "domain " + domain.name() + " has no disk '" + target + "'");
        }
        return d.length;
    }

    /** The whole disk is copied at once (the simulation has no background job), then every write follows. */
    @Override
    public synchronized DiskMirror mirrorDisk(DomainRef domain, String target, MirrorTarget to, Duration timeout) {
        check("blockdev-mirror");
        Sim s = sim(domain);
        byte[] d = s.disks.get(target);
        if (d == null) {
            throw new HypervisorException(Kind.UNSUPPORTED_DOMAIN, "domain " + domain.name() + " has no disk '" + target + "'");
        }
        qmpLog.add(s.name + ":blockdev-mirror");
        s.mirrors.put(target, to);
        to.write(0, d.length, d.clone());
        long size = d.length;
        return new DiskMirror() {
            @Override
            public String target() {
                return target;
            }

            @Override
            public Progress progress(Duration t) {
                synchronized (SimulatedHypervisor.this) {
                    boolean on = s.mirrors.get(target) == to && s.state.isActive();
                    return new Progress(size, size, on, on ? null : "mirror job is gone");
                }
            }

            @Override
            public void close() {
                synchronized (SimulatedHypervisor.this) {
                    s.mirrors.remove(target, to);
                }
            }
        };
    }

    /** Overlays live in the SVM's own disk model here: nothing to create. */
    @Override
    public void createOverlay(java.nio.file.Path file, long sizeBytes) {
        check("qemu-img create");
    }

    @Override
    public String guestUser() {
        return System.getProperty("user.name");
    }

    @Override
    public synchronized GuestRam mapGuestRam(DomainRef domain) {
        check("map guest RAM");
        Sim s = sim(domain);
        if (!s.sharedRam()) {
            throw new HypervisorException(Kind.UNSUPPORTED_DOMAIN, "domain " + s.name + " has no shared file-backed memory");
        }
        if (!s.state.isActive()) {
            throw new HypervisorException(Kind.INVALID_STATE, "domain " + s.name + " is not running");
        }
        cost("map");
        return new ArrayRam(s.name, s.ram);
    }

    @Override
    public synchronized void close() {
        closed = true;
    }

    /** Guest RAM backed by the simulated domain's array; chunked small to exercise boundaries. */
    private static final class ArrayRam implements GuestRam {
        private static final int CHUNK = 1 << 20;
        private final String name;
        private final byte[] ram;

        ArrayRam(String name, byte[] ram) {
            this.name = name;
            this.ram = ram;
        }

        @Override
        public long size() {
            return ram.length;
        }

        @Override
        public void read(long offset, ByteBuffer dst) {
            dst.put(ram, (int) offset, dst.remaining());
        }

        @Override
        public void write(long offset, ByteBuffer src) {
            src.get(ram, (int) offset, src.remaining());
        }

        @Override
        public ByteBuffer view(long offset, int length) {
            if (offset / CHUNK != (offset + length - 1) / CHUNK) {
                throw new IllegalArgumentException("view crosses a chunk boundary at " + offset);
            }
            return ByteBuffer.wrap(ram, (int) offset, length).slice().asReadOnlyBuffer();
        }

        @Override
        public int chunkSize() {
            return CHUNK;
        }

        @Override
        public String describe() {
            return "simulated RAM of " + name;
        }

        @Override
        public void close() {
            // Nothing mapped.
        }
    }
}
