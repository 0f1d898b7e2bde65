package dev.colo.host.libvirt;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.JsonNodeFactory;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.colo.host.posix.Command;
import dev.colo.host.posix.Fd;
import dev.colo.hypervisor.Blocking;
import dev.colo.hypervisor.DeviceState;
import dev.colo.hypervisor.DiskMirror;
import dev.colo.hypervisor.DomainRef;
import dev.colo.hypervisor.DomainState;
import dev.colo.hypervisor.GuestRam;
import dev.colo.hypervisor.Hypervisor;
import dev.colo.hypervisor.HypervisorException;
import dev.colo.hypervisor.HypervisorException.Kind;
import dev.colo.hypervisor.LifecycleEvent;
import dev.colo.hypervisor.LifecycleListener;
import dev.colo.hypervisor.MirrorTarget;
import dev.colo.hypervisor.QmpException;
import dev.colo.hypervisor.ReusableSvm;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Optional;
import java.util.UUID;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.regex.Pattern;
import org.libvirt.Connect;
import org.libvirt.Domain;
import org.libvirt.DomainInfo;
import org.libvirt.Library;
import org.libvirt.LibvirtException;
import org.libvirt.event.DomainEvent;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The hypervisor port over libvirt (libvirt-java + our own JNA where it falls short) and QMP
 * passthrough. Reconnects lazily when libvirtd restarts. Thread-safe.
 */
public final class LibvirtHypervisor implements Hypervisor {
    private static final Logger log = LoggerFactory.getLogger(LibvirtHypervisor.class);
    private static final ObjectMapper JSON = new ObjectMapper();
    private static final Pattern QEMU_USER = Pattern.compile("^\\s*user\\s*=\\s*\"([^\"]+)\"\\s*$");
    private static final Pattern UUID_RE = Pattern.compile("[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}");
    private static final int VIR_DOMAIN_START_PAUSED = 1;
    private static final int VIR_DOMAIN_XML_INACTIVE = 2;
    private static final AtomicInteger FD_NAMES = new AtomicInteger();

    private final String uri;
    private final RamFileLocator ramLocator;
    private final ExecutorService monitorCalls;
    private final CopyOnWriteArrayList<LifecycleListener> listeners = new CopyOnWriteArrayList<>();
    /** Domains (uuid@id) whose migration capabilities are already set for this QEMU process. */
    private final ConcurrentHashMap<String, Boolean> capabilitiesSet = new ConcurrentHashMap<>();
    private final org.libvirt.event.LifecycleListener bridge = this::onLibvirtLifecycle;
    private final ConcurrentHashMap<String, Domain> handles = new ConcurrentHashMap<>();
    /** Save streams already handed to QEMU (getfd), per domain uuid@id, waiting for the next save. */
    private final ConcurrentHashMap<String, ArmedStream> armed = new ConcurrentHashMap<>();

    /** Our end of a socketpair whose other end QEMU holds under {@code name}. */
    private record ArmedStream(String name, Fd local) {}

    /** colo's direct QMP monitor per running domain (by UUID); empty when it has none, or it did not answer until {@code retryAtNs}. */
    private record Monitor(Optional<DirectMonitor> monitor, long retryAtNs) {}

    private final ConcurrentHashMap<String, Monitor> monitors = new ConcurrentHashMap<>();
    /** The QEMU process of each running domain (UUID@libvirt id), asked of libvirt once per start. */
    private final ConcurrentHashMap<String, String> processKeys = new ConcurrentHashMap<>();

    /** Devices-only saves go into a memfd that QEMU holds as fdset {@code fdset}; per domain uuid@id. */
    private final ConcurrentHashMap<String, DevicesFile> devicesFiles = new ConcurrentHashMap<>();

    /**
     * {@code writeOnly} shares its open file description (and so its file offset) with QEMU's fdset
     * member: QEMU's O_TRUNC empties the file but leaves the offset, so colo rewinds it before each save.
     */
    private record DevicesFile(long fdset, Fd read, Fd writeOnly) {
        void close() {
            read.close();
            writeOnly.close();
        }
    }
    private volatile Connect handlesOf;
    private Connect conn;
    private boolean closed;

    public LibvirtHypervisor(String uri) {
        this(uri, RamFileLocator.system());
    }

    public LibvirtHypervisor(String uri, RamFileLocator ramLocator) {
        this.uri = uri;
        this.ramLocator = ramLocator;
        AtomicInteger n = new AtomicInteger();
        this.monitorCalls = Executors.newCachedThreadPool(r -> {
            Thread t = new Thread(r, "colo-qmp-" + n.incrementAndGet());
            t.setDaemon(true);
            return t;
        });
        LibvirtGate.silenceStderr();
        LibvirtEventLoop.ensureRunning();
        connection();
    }

    /** The live connection, reopened when libvirtd went away since the last call. */
    private synchronized Connect connection() {
        if (closed) {
            throw new HypervisorException(Kind.UNAVAILABLE, "hypervisor connection to " + uri + " is closed");
        }
        if (conn != null) {
            boolean alive;
            try {
                alive = conn.isAlive();
            } catch (LibvirtException e) {
                alive = false;
            }
            if (alive) {
                return conn;
            }
            log.atWarn().addKeyValue("uri", uri).log("libvirt connection lost, reconnecting");
            closeQuietly(conn);
            conn = null;
        }
        try {
            Connect c = new Connect(uri);
            try {
                c.addLifecycleListener(bridge);
            } catch (LibvirtException e) {
                log.atWarn().addKeyValue("uri", uri).addKeyValue("reason", e.getMessage()).log("libvirt lifecycle events unavailable");
            }
            conn = c;
            return c;
        } catch (LibvirtException e) {
            LibvirtFailure f = LibvirtGate.translate("connect to libvirtd at " + uri, null, e);
            throw new HypervisorException(Kind.UNAVAILABLE, f.getMessage()
                    + "; is libvirtd running? (systemctl start libvirtd, or virtlogd --daemon && libvirtd --daemon)", f);
        }
    }

    private static void closeQuietly(Connect c) {
        try {
            c.close();
        } catch (LibvirtException | RuntimeException ignored) {
            // Already broken; nothing more to release.
        }
    }

    private interface DomainCall<T> {
        T run(Domain d) throws LibvirtException;
    }

    /**
     * Runs {@code call} on the domain's handle, through the one error gate. Handles are cached per
     * UUID (a lookup is an RPC to libvirtd and checkpoints make several calls in the pause window)
     * and dropped when libvirt no longer knows the domain or the connection was renewed.
     */
    private <T> T withDomain(DomainRef ref, String operation, DomainCall<T> call) {
        Blocking.assertAllowed(operation);
        Domain d = handle(ref);
        try {
            return LibvirtGate.call(operation, ref.name(), () -> call.run(d));
        } catch (HypervisorException e) {
            if (e.kind() == Kind.DOMAIN_NOT_FOUND || e.kind() == Kind.UNAVAILABLE) {
                forget(ref.uuid(), d);
            }
            throw e;
        }
    }

    private Domain handle(DomainRef ref) {
        Connect c = connection();
        Domain cached = handles.get(ref.uuid());
        if (cached != null && handlesOf == c) {
            return cached;
        }
        Domain d = LibvirtGate.call("look up domain", ref.name(), () -> c.domainLookupByUUIDString(ref.uuid()));
        synchronized (this) {
            if (handlesOf != c) {
                handles.clear();
                handlesOf = c;
            }
            handles.put(ref.uuid(), d);
        }
        return d;
    }

    private void forget(String uuid, Domain d) {
        handles.remove(uuid, d);
    }

    private static DomainRef refOf(Domain d) throws LibvirtException {
        return new DomainRef(d.getName(), d.getUUIDString());
    }

    @Override
    public DomainRef define(String domainXml) {
        Blocking.assertAllowed("define");
        Connect c = connection();
        String name = DomainXml.parse(domainXml).name();
        Domain d = LibvirtGate.call("define domain", name, () -> c.domainDefineXML(domainXml));
        try {
            return LibvirtGate.call("describe defined domain", name, () -> refOf(d));
        } finally {
            LibvirtGate.run("free domain", name, d::free);
        }
    }

    @Override
    public void start(DomainRef domain, boolean paused) {
        DomainXml.parse(describe(domain, true)).directMonitor().ifPresent(this::monitorDirectory);
        withDomain(domain, paused ? "start paused" : "start", d -> {
            if (d.isActive() == 1) {
                // Drivers disagree on the code (QEMU: operation invalid, test driver: internal
                // error); callers act on the kind, so say it once here.
                throw new HypervisorException(Kind.INVALID_STATE, "domain " + domain.name() + " is already running");
            }
            return d.create(paused ? VIR_DOMAIN_START_PAUSED : 0);
        });
        capabilitiesSet.keySet().removeIf(k -> k.startsWith(domain.uuid()));
        dropArmed(domain);
    }

    private void dropArmed(DomainRef domain) {
        processKeys.remove(domain.uuid());
        Monitor m = monitors.remove(domain.uuid());
        if (m != null) {
            m.monitor().ifPresent(DirectMonitor::close);
        }
        devicesFiles.entrySet().removeIf(e -> {
            if (e.getKey().startsWith(domain.uuid())) {
                e.getValue().close();
                return true;
            }
            return false;
        });
        armed.entrySet().removeIf(e -> {
            if (e.getKey().startsWith(domain.uuid())) {
                e.getValue().local().close();
                return true;
            }
            return false;
        });
    }

    @Override
    public void destroy(DomainRef domain) {
        withDomain(domain, "destroy", d -> {
            if (d.isActive() == 1) {
                try {
                    d.destroy();
                } catch (LibvirtException e) {
                    // A domain that died on its own between the check and the call is destroyed enough.
                    if (d.isActive() == 1) {
                        throw e;
                    }
                }
            }
            return null;
        });
        dropArmed(domain);
    }

    @Override
    public void undefine(DomainRef domain) {
        withDomain(domain, "undefine", d -> {
            d.undefine();
            return null;
        });
        handles.remove(domain.uuid());
    }

    @Override
    public Optional<DomainRef> lookup(String nameOrUuid) {
        Blocking.assertAllowed("lookup");
        Connect c = connection();
        try {
            Domain d = UUID_RE.matcher(nameOrUuid).matches() ? c.domainLookupByUUIDString(nameOrUuid) : c.domainLookupByName(nameOrUuid);
            try {
                return Optional.of(refOf(d));
            } finally {
                d.free();
            }
        } catch (LibvirtException e) {
            LibvirtFailure f = LibvirtGate.translate("look up domain", nameOrUuid, e);
            if (f.kind() == Kind.DOMAIN_NOT_FOUND) {
                return Optional.empty();
            }
            throw f;
        }
    }

    @Override
    public java.util.List<DomainRef> list() {
        Blocking.assertAllowed("list");
        Connect c = connection();
        try {
            java.util.List<DomainRef> all = new java.util.ArrayList<>();
            for (Domain d : c.listAllDomains(0)) {
                try {
                    all.add(refOf(d));
                } finally {
                    d.free();
                }
            }
            return all;
        } catch (LibvirtException e) {
            throw LibvirtGate.translate("list domains", "*", e);
        }
    }

    @Override
    public DomainState state(DomainRef domain) {
        return withDomain(domain, "get state", d -> mapState(d.getInfo().state));
    }

    static DomainState mapState(DomainInfo.DomainState s) {
        switch (s) {
            case VIR_DOMAIN_RUNNING: return DomainState.RUNNING;
            case VIR_DOMAIN_PAUSED: return DomainState.PAUSED;
            case VIR_DOMAIN_SHUTOFF: return DomainState.SHUTOFF;
            case VIR_DOMAIN_CRASHED: return DomainState.CRASHED;
            default: return DomainState.OTHER;
        }
    }

    @Override
    public String describe(DomainRef domain, boolean inactive) {
        return withDomain(domain, "describe", d -> d.getXMLDesc(inactive ? VIR_DOMAIN_XML_INACTIVE : 0));
    }

    @Override
    public AutoCloseable onLifecycle(LifecycleListener listener) {
        listeners.add(listener);
        return () -> listeners.remove(listener);
    }

    private int onLibvirtLifecycle(Domain d, DomainEvent event) {
        LifecycleEvent e;
        try {
            e = new LifecycleEvent(refOf(d), mapEvent(event), String.valueOf((Object) event.getDetail()));
        } catch (LibvirtException | RuntimeException ex) {
            log.atWarn().addKeyValue("reason", ex.getMessage()).log("libvirt lifecycle event dropped: cannot describe domain");
            return 0;
        }
        for (LifecycleListener l : listeners) {
            try {
                l.onLifecycle(e);
            } catch (RuntimeException ex) {
                log.atError().addKeyValue("vm", e.domain().name()).addKeyValue("event", e.kind()).setCause(ex).log("lifecycle listener failed");
            }
        }
        return 0;
    }

    private static LifecycleEvent.Kind mapEvent(DomainEvent event) {
        switch (event.getType()) {
            case DEFINED: return LifecycleEvent.Kind.DEFINED;
            case UNDEFINED: return LifecycleEvent.Kind.UNDEFINED;
            case STARTED: return LifecycleEvent.Kind.STARTED;
            case SUSPENDED: return LifecycleEvent.Kind.SUSPENDED;
            case RESUMED: return LifecycleEvent.Kind.RESUMED;
            case STOPPED:
                // libvirt reports a QEMU that died (e.g. kill -9) as STOPPED/FAILED.
                String detail = String.valueOf((Object) event.getDetail());
                return detail.equals("CRASHED") || detail.equals("FAILED") ? LifecycleEvent.Kind.CRASHED : LifecycleEvent.Kind.STOPPED;
            case SHUTDOWN: return LifecycleEvent.Kind.SHUTDOWN;
            case CRASHED: return LifecycleEvent.Kind.CRASHED;
            default: return LifecycleEvent.Kind.OTHER;
        }
    }

    // --- QMP ---

    @Override
    public JsonNode qmp(DomainRef domain, String command, ObjectNode arguments, Duration timeout) {
        ObjectNode req = JsonNodeFactory.instance.objectNode();
        req.put("execute", command);
        if (arguments != null && arguments.size() > 0) {
            req.set("arguments", arguments);
        }
        String reply = bounded(domain, command, timeout,
                () -> withDomain(domain, "QMP " + command, d -> d.qemuMonitorCommand(req.toString(), 0)));
        return parseReply(command, reply);
    }

    private JsonNode qmpWithFd(DomainRef domain, String command, ObjectNode arguments, Fd fd, Duration timeout) {
        ObjectNode req = JsonNodeFactory.instance.objectNode();
        req.put("execute", command);
        req.set("arguments", arguments);
        String reply = bounded(domain, command, timeout, () -> withDomain(domain, "QMP " + command,
                d -> QemuMonitorWithFiles.command(d, domain.name(), req.toString(), fd.number())));
        return parseReply(command, reply);
    }

    private interface Bounded<T> {
        T call();
    }

    /** Runs a monitor call on a worker so a wedged QEMU costs the caller at most {@code timeout}. */
    private <T> T bounded(DomainRef domain, String command, Duration timeout, Bounded<T> body) {
        Blocking.assertAllowed("QMP " + command);
        Future<T> f = monitorCalls.submit(body::call);
        try {
            return f.get(timeout.toNanos(), TimeUnit.NANOSECONDS);
        } catch (TimeoutException e) {
            f.cancel(true);
            throw new HypervisorException(Kind.TIMEOUT, "QMP " + command + " on " + domain.name()
                    + " got no answer within " + timeout.toMillis() + " ms", e);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            f.cancel(true);
            throw new HypervisorException(Kind.TIMEOUT, "interrupted waiting for QMP " + command + " on " + domain.name(), e);
        } catch (ExecutionException e) {
            if (e.getCause() instanceof HypervisorException he) {
                throw he;
            }
            throw new HypervisorException(Kind.FAILED, "QMP " + command + " on " + domain.name() + " failed: " + e.getCause(), e.getCause());
        }
    }

    static JsonNode parseReply(String command, String reply) {
        JsonNode node;
        try {
            node = JSON.readTree(reply);
        } catch (IOException e) {
            throw new HypervisorException(Kind.FAILED, "QMP " + command + " answered with malformed JSON: " + abbreviate(reply), e);
        }
        if (node == null || !node.isObject()) {
            throw new HypervisorException(Kind.FAILED, "QMP " + command + " answered with a non-object: " + abbreviate(reply));
        }
        JsonNode err = node.get("error");
        if (err != null) {
            throw new QmpException(command, err.path("class").asText("UnknownError"), err.path("desc").asText(""));
        }
        JsonNode ret = node.get("return");
        return ret == null ? JsonNodeFactory.instance.objectNode() : ret;
    }

    private static String abbreviate(String s) {
        return s == null ? "null" : s.length() > 200 ? s.substring(0, 200) + "…" : s;
    }

    // --- device state ---

    private void ensureIgnoreShared(DomainRef domain, Duration timeout) {
        String key = processKey(domain);
        if (capabilitiesSet.containsKey(key)) {
            return;
        }
        ObjectNode cap = JsonNodeFactory.instance.objectNode();
        cap.put("capability", "x-ignore-shared");
        cap.put("state", true);
        ObjectNode args = JsonNodeFactory.instance.objectNode();
        args.putArray("capabilities").add(cap);
        qmp(domain, "migrate-set-capabilities", args, timeout);
        // QEMU throttles migration to 128 MiB/s by default; device state should go at memory speed.
        qmp(domain, "migrate-set-parameters", JsonNodeFactory.instance.objectNode().put("max-bandwidth", 1L << 40), timeout);
        capabilitiesSet.put(key, Boolean.TRUE);
    }

    private String processKey(DomainRef domain) {
        return processKeys.computeIfAbsent(domain.uuid(), u -> u + "@" + withDomain(domain, "get domain id", Domain::getID));
    }

    // --- colo's direct monitor ---

    /** QEMU makes its monitor socket itself, as its own user: the directory must be that user's. */
    private void monitorDirectory(Path socket) {
        Path dir = socket.getParent();
        try {
            java.nio.file.Files.createDirectories(dir);
            java.nio.file.Files.setOwner(dir, dir.getFileSystem().getUserPrincipalLookupService().lookupPrincipalByName(guestUser()));
            java.nio.file.Files.setPosixFilePermissions(dir, java.nio.file.attribute.PosixFilePermissions.fromString("rwx------"));
        } catch (IOException e) {
            throw new HypervisorException(Kind.FAILED, "cannot prepare " + dir + " for QEMU's monitor socket: " + e.getMessage(), e);
        }
    }

    /** The domain's direct monitor, connected on first use; empty when the domain has none (or it is not answering). */
    private Optional<DirectMonitor> direct(DomainRef domain) {
        Monitor m = monitors.get(domain.uuid());
        if (m != null && (m.monitor().map(DirectMonitor::open).orElse(false) || (m.monitor().isEmpty() && System.nanoTime() < m.retryAtNs()))) {
            return m.monitor();
        }
        Optional<Path> socket = DomainXml.parse(describe(domain, false)).directMonitor();
        Optional<DirectMonitor> made = Optional.empty();
        if (socket.isPresent()) {
            try {
                made = Optional.of(DirectMonitor.connect(socket.get(), Duration.ofSeconds(2)));
            } catch (IOException e) {
                log.atWarn().addKeyValue("vm", domain.name()).addKeyValue("socket", socket.get()).addKeyValue("reason", e.getMessage())
                        .log("direct QMP monitor not answering; using libvirt's");
            }
        }
        // A domain without one is asked again only after a restart; one that did not answer, in 5 s.
        monitors.put(domain.uuid(), new Monitor(made, socket.isPresent() ? System.nanoTime() + 5_000_000_000L : Long.MAX_VALUE));
        return made;
    }

    /**
     * Runs {@code command} on colo's direct monitor when the domain has one, else (or if it fails
     * without an answer) through libvirt. A QMP error or a timeout is final either way.
     */
    private JsonNode directOrLibvirt(DomainRef domain, String command, ObjectNode arguments, Duration timeout) {
        Blocking.assertAllowed("QMP " + command);
        Optional<DirectMonitor> m = direct(domain);
        if (m.isPresent()) {
            try {
                return m.get().execute(command, arguments, timeout);
            } catch (QmpException e) {
                throw e;
            } catch (HypervisorException e) {
                if (e.kind() == Kind.TIMEOUT) {
                    throw e;
                }
                log.atWarn().addKeyValue("vm", domain.name()).addKeyValue("command", command).addKeyValue("reason", e.getMessage())
                        .log("direct QMP monitor failed; using libvirt's");
            }
        }
        return qmp(domain, command, arguments, timeout);
    }

    @Override
    public void pause(DomainRef domain, Duration timeout) {
        directOrLibvirt(domain, "stop", null, timeout);
    }

    @Override
    public void resume(DomainRef domain, Duration timeout) {
        directOrLibvirt(domain, "cont", null, timeout);
    }

    @Override
    public void prepareCheckpoint(DomainRef domain, Duration timeout) {
        long deadline = System.nanoTime() + timeout.toNanos();
        ensureIgnoreShared(domain, remaining(deadline));
        String key = processKey(domain);
        if (!armed.containsKey(key)) {
            ArmedStream a = arm(domain, remaining(deadline));
            if (armed.putIfAbsent(key, a) != null) {
                a.local().close();
            }
        }
        devicesFile(domain, key, remaining(deadline));
    }

    /** The domain's devices-only save file, handed to QEMU once per process with QMP add-fd. */
    private DevicesFile devicesFile(DomainRef domain, String key, Duration timeout) {
        DevicesFile f = devicesFiles.get(key);
        if (f != null) {
            return f;
        }
        Fd[] mem;
        try {
            mem = Fd.memFile("colo devices save of " + domain.name());
        } catch (IOException e) {
            throw new HypervisorException(Kind.STREAM, e.getMessage(), e);
        }
        try {
            JsonNode r = qmpWithFd(domain, "add-fd", JsonNodeFactory.instance.objectNode().put("opaque", "colo devices-only save"), mem[1],
                    timeout);
            DevicesFile made = new DevicesFile(r.path("fdset-id").asLong(-1), mem[0], mem[1]);
            if (made.fdset() < 0) {
                throw new HypervisorException(Kind.FAILED, "QMP add-fd on " + domain.name() + " returned no fdset-id: " + r);
            }
            DevicesFile raced = devicesFiles.putIfAbsent(key, made);
            if (raced != null) {
                made.close();
                return raced;
            }
            return made;
        } catch (RuntimeException e) {
            mem[0].close();
            mem[1].close();
            throw e;
        }
    }

    @Override
    public DeviceState saveDevices(DomainRef domain, Duration timeout) {
        Blocking.assertAllowed("save devices");
        long deadline = System.nanoTime() + timeout.toNanos();
        long t0 = System.nanoTime();
        String status = directOrLibvirt(domain, "query-status", null, remaining(deadline)).path("status").asText();
        if (status.equals("running")) {
            throw new HypervisorException(Kind.INVALID_STATE, "devices-only save of " + domain.name() + " needs a paused domain, it is running");
        }
        String key = processKey(domain);
        DevicesFile file = devicesFile(domain, key, remaining(deadline));
        try {
            file.writeOnly().rewind();
            long t1 = System.nanoTime();
            // QEMU opens the fdset member with O_TRUNC: every save starts from an empty file.
            directOrLibvirt(domain, "xen-save-devices-state", JsonNodeFactory.instance.objectNode().put("filename", "/dev/fdset/" + file.fdset())
                    .put("live", false), remaining(deadline));
            long t2 = System.nanoTime();
            byte[] bytes = file.read().readAll();
            ColoStream.devicesBody(bytes); // fails on anything but a whole devices-only stream
            log.atDebug().addKeyValue("vm", domain.name()).addKeyValue("bytes", bytes.length).addKeyValue("prepare_us", (t1 - t0) / 1000)
                    .addKeyValue("save_us", (t2 - t1) / 1000).addKeyValue("read_us", (System.nanoTime() - t2) / 1000).log("devices saved");
            return new DeviceState(bytes);
        } catch (IOException | RuntimeException e) {
            DevicesFile dropped = devicesFiles.remove(key);
            if (dropped != null) {
                dropped.close();
            }
            if (e instanceof HypervisorException he) {
                throw he;
            }
            throw new HypervisorException(Kind.STREAM, "devices-only save of " + domain.name() + " failed: " + e.getMessage(), e);
        }
    }

    @Override
    public ReusableSvm loadReusable(DomainRef standby, DeviceState full, Duration timeout) {
        Blocking.assertAllowed("load a reusable SVM");
        long deadline = System.nanoTime() + timeout.toNanos();
        Fd local = null;
        boolean loaded = false;
        try {
            byte[] stream = ColoStream.withColoEnabled(full.bytes());
            ensureIgnoreShared(standby, remaining(deadline));
            ObjectNode cap = JsonNodeFactory.instance.objectNode().put("capability", "x-colo").put("state", true);
            ObjectNode caps = JsonNodeFactory.instance.objectNode();
            caps.putArray("capabilities").add(cap);
            qmp(standby, "migrate-set-capabilities", caps, remaining(deadline));
            String fdName = "colo-svm-" + FD_NAMES.incrementAndGet();
            Fd[] pair = Fd.socketPair("COLO channel of " + standby.name());
            local = pair[0];
            try (Fd remote = pair[1]) {
                qmpWithFd(standby, "getfd", JsonNodeFactory.instance.objectNode().put("fdname", fdName), remote, remaining(deadline));
            }
            qmp(standby, "migrate-incoming", JsonNodeFactory.instance.objectNode().put("uri", "fd:" + fdName), remaining(deadline));
            ByteBuffer buf = ByteBuffer.allocateDirect(stream.length);
            buf.put(stream).flip();
            local.writeFully(buf, deadline);
            // No end of stream: the socket stays open as the COLO channel, and QEMU runs the SVM
            // itself once it loaded, then says CHECKPOINT_READY.
            ColoSvm svm = new ColoSvm(standby, local, t -> qmp(standby, "x-colo-lost-heartbeat", null, t));
            svm.awaitReady(remaining(deadline));
            loaded = true;
            return svm;
        } catch (IOException e) {
            throw new HypervisorException(Kind.STREAM, "reusable load into " + standby.name() + " broke off: " + e.getMessage(), e);
        } finally {
            if (!loaded) {
                if (local != null) {
                    local.close();
                }
                try {
                    destroy(standby);
                } catch (HypervisorException e) {
                    log.atWarn().addKeyValue("vm", standby.name()).addKeyValue("reason", e.getMessage()).log("cannot destroy failed standby");
                }
            }
        }
    }

    /** Creates a socketpair and hands one end to QEMU with QMP getfd. */
    private ArmedStream arm(DomainRef domain, Duration timeout) {
        String fdName = "colo-save-" + FD_NAMES.incrementAndGet();
        Fd[] pair;
        try {
            pair = Fd.socketPair("device-state save of " + domain.name());
        } catch (IOException e) {
            throw new HypervisorException(Kind.STREAM, e.getMessage(), e);
        }
        try (Fd remote = pair[1]) {
            qmpWithFd(domain, "getfd", JsonNodeFactory.instance.objectNode().put("fdname", fdName), remote, timeout);
            return new ArmedStream(fdName, pair[0]);
        } catch (RuntimeException e) {
            pair[0].close();
            throw e;
        }
    }

    @Override
    public DeviceState saveDeviceState(DomainRef domain, Duration timeout) {
        Blocking.assertAllowed("save device state");
        long deadline = System.nanoTime() + timeout.toNanos();
        long t0 = System.nanoTime();
        DomainState now = state(domain);
        if (now != DomainState.PAUSED) {
            // QEMU would migrate a running guest and leave it stopped: refuse, as the port promises.
            throw new HypervisorException(Kind.INVALID_STATE, "device-state save of " + domain.name() + " needs a paused domain, it is " + now);
        }
        ensureIgnoreShared(domain, remaining(deadline));
        ArmedStream stream = armed.remove(processKey(domain));
        if (stream == null) {
            stream = arm(domain, remaining(deadline));
        }
        try (Fd local = stream.local()) {
            long t1 = System.nanoTime();
            qmp(domain, "migrate", JsonNodeFactory.instance.objectNode().put("uri", "fd:" + stream.name()), remaining(deadline));
            long t2 = System.nanoTime();
            ByteArrayOutputStream out = new ByteArrayOutputStream(1 << 20);
            ByteBuffer buf = ByteBuffer.allocateDirect(1 << 20);
            while (true) {
                buf.clear();
                int n = local.read(buf, deadline);
                if (n < 0) {
                    break;
                }
                if (n == 0 && System.nanoTime() - deadline >= 0) {
                    throw new HypervisorException(Kind.TIMEOUT, "device-state save of " + domain.name()
                            + " did not finish within " + timeout.toMillis() + " ms (" + out.size() + " bytes so far)");
                }
                buf.flip();
                byte[] chunk = new byte[buf.remaining()];
                buf.get(chunk);
                out.write(chunk, 0, chunk.length);
            }
            long t3 = System.nanoTime();
            awaitMigration(domain, "save", deadline, timeout);
            long t4 = System.nanoTime();
            log.atDebug().addKeyValue("vm", domain.name()).addKeyValue("bytes", out.size()).addKeyValue("prepare_us", (t1 - t0) / 1000)
                    .addKeyValue("migrate_us", (t2 - t1) / 1000).addKeyValue("stream_us", (t3 - t2) / 1000).addKeyValue("status_us", (t4 - t3) / 1000)
                    .log("device state saved");
            return new DeviceState(out.toByteArray());
        } catch (IOException e) {
            throw new HypervisorException(Kind.STREAM, "device-state save of " + domain.name() + " broke off: " + e.getMessage(), e);
        }
    }

    @Override
    public void loadDeviceState(DomainRef standby, DeviceState state, Duration timeout) {
        Blocking.assertAllowed("load device state");
        long deadline = System.nanoTime() + timeout.toNanos();
        boolean loaded = false;
        try {
            ensureIgnoreShared(standby, remaining(deadline));
            String fdName = "colo-load-" + FD_NAMES.incrementAndGet();
            Fd[] pair = Fd.socketPair("device-state load of " + standby.name());
            try (Fd local = pair[0]; Fd remote = pair[1]) {
                qmpWithFd(standby, "getfd", JsonNodeFactory.instance.objectNode().put("fdname", fdName), remote, remaining(deadline));
                remote.close();
                qmp(standby, "migrate-incoming", JsonNodeFactory.instance.objectNode().put("uri", "fd:" + fdName), remaining(deadline));
                ByteBuffer buf = ByteBuffer.allocateDirect(state.size());
                buf.put(state.bytes()).flip();
                local.writeFully(buf, deadline);
                local.shutdownOutput();
                awaitMigration(standby, "load", deadline, timeout);
                loaded = true;
            }
        } catch (IOException e) {
            throw new HypervisorException(Kind.STREAM, "device-state load into " + standby.name() + " broke off: " + e.getMessage(), e);
        } finally {
            if (!loaded) {
                // A QEMU that failed to load state is useless: never leave it half-started.
                try {
                    destroy(standby);
                } catch (HypervisorException e) {
                    log.atWarn().addKeyValue("vm", standby.name()).addKeyValue("reason", e.getMessage()).log("cannot destroy failed standby");
                }
            }
        }
    }

    /** Polls {@code query-migrate} until the stream completed or failed. */
    private void awaitMigration(DomainRef domain, String what, long deadline, Duration timeout) {
        while (true) {
            JsonNode st;
            try {
                st = qmp(domain, "query-migrate", null, remaining(deadline));
            } catch (HypervisorException e) {
                if (e.kind() == Kind.TIMEOUT) {
                    throw e;
                }
                throw new HypervisorException(Kind.STREAM, "device-state " + what + " on " + domain.name()
                        + " failed: QEMU stopped answering (" + e.getMessage() + ")", e);
            }
            String status = st.path("status").asText("none");
            switch (status) {
                case "completed":
                    return;
                case "failed":
                case "cancelled":
                    throw new HypervisorException(Kind.STREAM, "device-state " + what + " on " + domain.name()
                            + " " + status + ": " + st.path("error-desc").asText("no reason given"));
                default:
                    if (System.nanoTime() - deadline >= 0) {
                        throw new HypervisorException(Kind.TIMEOUT, "device-state " + what + " on " + domain.name()
                                + " still " + status + " after " + timeout.toMillis() + " ms");
                    }
                    Thread.onSpinWait();
            }
        }
    }

    private static Duration remaining(long deadline) {
        long left = deadline - System.nanoTime();
        if (left <= 0) {
            throw new HypervisorException(Kind.TIMEOUT, "operation ran out of time");
        }
        return Duration.ofNanos(left);
    }

    // --- guest RAM ---

    @Override
    public GuestRam mapGuestRam(DomainRef domain) {
        Blocking.assertAllowed("map guest RAM");
        DomainXml live = DomainXml.parse(describe(domain, false));
        if (!live.hasSharedFileMemory()) {
            throw new HypervisorException(Kind.UNSUPPORTED_DOMAIN, "domain " + domain.name()
                    + " has no shared file-backed memory; add <memoryBacking><source type='file'/><access mode='shared'/></memoryBacking>"
                    + " (colo pair does this for you)");
        }
        if (state(domain) == DomainState.SHUTOFF) {
            throw new HypervisorException(Kind.INVALID_STATE, "domain " + domain.name() + " is not running; its RAM file exists only while it runs");
        }
        long pid = ramLocator.qemuPid(domain.name());
        Path file = ramLocator.ramFile(pid).orElseThrow(() -> new HypervisorException(Kind.UNSUPPORTED_DOMAIN,
                "QEMU pid " + pid + " of " + domain.name() + " maps no shared pc.ram file"));
        try {
            return MappedGuestRam.map(file, live.memoryBytes());
        } catch (IOException e) {
            throw new HypervisorException(Kind.FAILED, "cannot map guest RAM of " + domain.name() + " at " + file + ": " + e.getMessage(), e);
        }
    }

    /** A fresh random UUID string, for derived domains. */
    // --- disks ---

    @Override
    public long diskSize(DomainRef domain, String target, Duration timeout) {
        return QemuDiskMirror.find(this, domain, target, timeout).size();
    }

    @Override
    public DiskMirror mirrorDisk(DomainRef domain, String target, MirrorTarget to, Duration timeout) {
        return QemuDiskMirror.start(this, domain, target, to, timeout);
    }

    @Override
    public void createOverlay(java.nio.file.Path file, long sizeBytes) {
        Command.Result r = Command.run(Duration.ofSeconds(30), "qemu-img", "create", "-q", "-f", "qcow2", file.toString(), Long.toString(sizeBytes));
        if (!r.ok()) {
            throw new HypervisorException(Kind.FAILED, "qemu-img cannot create overlay " + file + ": " + r.err().trim());
        }
        try {
            java.nio.file.Files.setOwner(file, file.getFileSystem().getUserPrincipalLookupService().lookupPrincipalByName(guestUser()));
        } catch (IOException e) {
            throw new HypervisorException(Kind.FAILED, "cannot give overlay " + file + " to " + guestUser() + ": " + e.getMessage(), e);
        }
    }

    /** libvirt's {@code user} in qemu.conf (QEMU's user), "libvirt-qemu" as Debian sets it when unset. */
    @Override
    public String guestUser() {
        java.nio.file.Path conf = java.nio.file.Path.of("/etc/libvirt/qemu.conf");
        try {
            if (java.nio.file.Files.isReadable(conf)) {
                for (String line : java.nio.file.Files.readAllLines(conf)) {
                    java.util.regex.Matcher m = QEMU_USER.matcher(line);
                    if (m.matches()) {
                        return m.group(1).startsWith("+") ? m.group(1).substring(1) : m.group(1);
                    }
                }
            }
        } catch (IOException e) {
            log.atWarn().addKeyValue("file", conf).addKeyValue("reason", e.getMessage()).log("cannot read QEMU's user from qemu.conf");
        }
        return "libvirt-qemu";
    }

    public static String newUuid() {
        return UUID.randomUUID().toString();
    }

    public String uri() {
        return uri;
    }

    @Override
    public synchronized void close() {
        if (closed) {
            return;
        }
        closed = true;
        if (conn != null) {
            try {
                conn.removeLifecycleListener(bridge);
            } catch (LibvirtException | RuntimeException ignored) {
                // The connection may already be gone.
            }
            closeQuietly(conn);
            conn = null;
        }
        handles.clear();
        armed.values().forEach(a -> a.local().close());
        armed.clear();
        devicesFiles.values().forEach(DevicesFile::close);
        devicesFiles.clear();
        monitorCalls.shutdownNow();
    }

    /** libvirt's default event loop on one daemon thread, started once per process. */
    static final class LibvirtEventLoop {
        private static volatile Thread thread;

        private LibvirtEventLoop() {}

        static synchronized void ensureRunning() {
            if (thread != null) {
                return;
            }
            LibvirtGate.run("register libvirt event loop", null, Library::initEventLoop);
            Thread t = new Thread(() -> {
                while (true) {
                    try {
                        Library.processEvent();
                    } catch (LibvirtException e) {
                        log.atWarn().addKeyValue("reason", e.getMessage()).log("libvirt event loop iteration failed");
                    }
                }
            }, "colo-libvirt-events");
            t.setDaemon(true);
            t.start();
            thread = t;
        }
    }
}
