package dev.colo.lab;

import dev.colo.host.posix.NetNamespace;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.Socket;
import java.net.SocketTimeoutException;
import java.net.URLEncoder;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Random;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.atomic.AtomicLong;

/**
 * Clients of the students application on the web + SQL guest ({@link AppGuest}), and the check of
 * the COLO promise against the database of whatever VM serves afterwards:
 * <ul>
 *   <li>writers on HTTP/1.1 keep-alive connections, each posting the form ({@code POST /students})
 *       one student at a time, with a name no other request uses; a 201 carries the new row's id;
 *   <li>a reader of the list page ({@code GET /}, which starts a PHP session with a random id and
 *       shows every row's registration time: different output on the PVM and the SVM);
 *   <li>a reader of {@code /students.txt}.
 * </ul>
 * Nothing is retried: a connection that breaks or a request unanswered within the client's
 * patience is a failure. Afterwards every student whose insert was acknowledged must be in the
 * survivor's table exactly once, with the id the client was given, and PostgreSQL's own checker
 * ({@code GET /check}, amcheck) must find the table sound.
 */
public final class StudentsLoad implements AutoCloseable {
    private static final int PATIENCE_MS = 30_000;

    public record Result(long requests, long failed, long broken, long inserted, long missing, long duplicated, long wrongId, String check,
            long longestWaitMs, long longestAcrossFaultMs, List<String> problems) {
        public boolean promiseKept() {
            return failed == 0 && broken == 0 && missing == 0 && duplicated == 0 && wrongId == 0 && check.startsWith("ok ");
        }

        public String summary() {
            return String.format(Locale.ROOT, "requests=%d failed=%d broken=%d inserted=%d missing=%d duplicated=%d wrong_id=%d check=[%s] "
                    + "longest_wait_ms=%d across_fault_ms=%d", requests, failed, broken, inserted, missing, duplicated, wrongId, check.trim(),
                    longestWaitMs, longestAcrossFaultMs);
        }
    }

    /** One HTTP response: status, headers (lower-case names), body. */
    public record Response(int status, Map<String, String> headers, byte[] body) {
        public String text() {
            return new String(body, StandardCharsets.UTF_8);
        }
    }

    private final NetNamespace clientNs;
    private final String vmIp;
    private final List<String> problems = new CopyOnWriteArrayList<>();
    private final ClientThreads clients = new ClientThreads("students", problems);
    private final Map<String, Long> acknowledged = new ConcurrentHashMap<>();
    private final AtomicLong requests = new AtomicLong();
    private final AtomicLong failed = new AtomicLong();
    private final AtomicLong broken = new AtomicLong();
    private final List<long[]> waits = Collections.synchronizedList(new ArrayList<>());
    private volatile boolean running = true;
    private final int writerPauseMs;
    private volatile long faultEpochMs = -1;
    private final String run = Long.toString(System.nanoTime() % 1_000_000, 36);

    public StudentsLoad(NetNamespace clientNs, String vmIp, int writers) {
        this(clientNs, vmIp, writers, 60);
    }

    /** @param writerPauseMs a writer waits up to this long (at random) between two inserts; 0: none */
    public StudentsLoad(NetNamespace clientNs, String vmIp, int writers, int writerPauseMs) {
        this.clientNs = clientNs;
        this.vmIp = vmIp;
        this.writerPauseMs = writerPauseMs;
        for (int i = 0; i < writers; i++) {
            int id = i;
            clients.start("writer-" + i, () -> writer(id));
        }
        clients.start("list-page", () -> reader("/"));
        clients.start("list-text", () -> reader("/students.txt"));
    }

    private Socket connect() throws Exception {
        return ClientThreads.connect(clientNs, vmIp, 80, PATIENCE_MS);
    }

    /** What a client waited for. */
    public enum Kind { INSERT, LIST_PAGE, LIST_TEXT }

    private void waited(Kind kind, long t0) {
        long us = (System.nanoTime() - t0) / 1_000;
        waits.add(new long[] {System.currentTimeMillis() - us / 1000, us / 1000, kind.ordinal(), us});
    }

    /** Every answered request of {@code kind} so far: how long it took, in microseconds, sorted. */
    public long[] latenciesUs(Kind kind) {
        synchronized (waits) {
            return waits.stream().filter(w -> w[2] == kind.ordinal()).mapToLong(w -> w[3]).sorted().toArray();
        }
    }

    private void writer(int id) throws Exception {
        Random rnd = new Random(id * 31L + 7);
        int n = 0;
        while (running) {
            try (Socket s = connect()) {
                InputStream in = s.getInputStream();
                OutputStream out = s.getOutputStream();
                for (int k = 0; k < 100 && running; k++) {
                    String name = "s-" + run + "-" + id + "-" + (++n);
                    String form = "name=" + URLEncoder.encode(name, StandardCharsets.UTF_8) + "&age=" + (18 + rnd.nextInt(50)) + "&email="
                            + URLEncoder.encode(name + "@example.org", StandardCharsets.UTF_8);
                    long t0 = System.nanoTime();
                    requests.incrementAndGet();
                    out.write(("POST /students HTTP/1.1\r\nHost: " + vmIp + "\r\nContent-Type: application/x-www-form-urlencoded\r\n"
                            + "Content-Length: " + form.length() + "\r\n\r\n" + form).getBytes(StandardCharsets.US_ASCII));
                    Response r;
                    try {
                        r = read(in);
                    } catch (SocketTimeoutException e) {
                        failed.incrementAndGet();
                        problems.add("insert of " + name + " unanswered after " + PATIENCE_MS + " ms");
                        return;
                    }
                    if (r == null) {
                        broken.incrementAndGet();
                        problems.add("insert of " + name + ": the connection closed");
                        return;
                    }
                    if (r.status() != 201 || r.headers().get("x-student-id") == null) {
                        failed.incrementAndGet();
                        problems.add("insert of " + name + " answered " + r.status() + " " + r.text().trim());
                        return;
                    }
                    acknowledged.put(name, Long.parseLong(r.headers().get("x-student-id")));
                    waited(Kind.INSERT, t0);
                    if (writerPauseMs > 0) {
                        Thread.sleep(rnd.nextInt(writerPauseMs));
                    }
                }
            } catch (IOException e) {
                broken.incrementAndGet();
                problems.add("writer " + id + ": " + e);
                return;
            }
        }
    }

    private void reader(String path) throws Exception {
        Random rnd = new Random(path.hashCode());
        String cookie = null;
        while (running) {
            try (Socket s = connect()) {
                InputStream in = s.getInputStream();
                OutputStream out = s.getOutputStream();
                for (int k = 0; k < 20 && running; k++) {
                    long t0 = System.nanoTime();
                    requests.incrementAndGet();
                    out.write(("GET " + path + " HTTP/1.1\r\nHost: " + vmIp + "\r\n" + (cookie == null ? "" : "Cookie: " + cookie + "\r\n") + "\r\n")
                            .getBytes(StandardCharsets.US_ASCII));
                    Response r;
                    try {
                        r = read(in);
                    } catch (SocketTimeoutException e) {
                        failed.incrementAndGet();
                        problems.add("GET " + path + " unanswered after " + PATIENCE_MS + " ms");
                        return;
                    }
                    if (r == null || r.status() != 200) {
                        failed.incrementAndGet();
                        problems.add("GET " + path + " answered " + (r == null ? "nothing (closed)" : r.status() + " " + r.text().trim()));
                        return;
                    }
                    String set = r.headers().get("set-cookie");
                    if (set != null) {
                        cookie = set.split(";", 2)[0];
                    }
                    waited(path.equals("/") ? Kind.LIST_PAGE : Kind.LIST_TEXT, t0);
                    Thread.sleep(100 + rnd.nextInt(300));
                }
            } catch (IOException e) {
                broken.incrementAndGet();
                problems.add("reader " + path + ": " + e);
                return;
            }
        }
    }

    /** Reads one HTTP/1.1 response (Content-Length or chunked); null when the connection closed before one. */
    static Response read(InputStream in) throws IOException {
        String status = line(in);
        if (status == null) {
            return null;
        }
        String[] parts = status.split(" ", 3);
        if (parts.length < 2 || !parts[0].startsWith("HTTP/1.")) {
            throw new IOException("not an HTTP response: " + status);
        }
        Map<String, String> headers = new LinkedHashMap<>();
        for (String h; (h = line(in)) != null && !h.isEmpty(); ) {
            int c = h.indexOf(':');
            if (c > 0) {
                headers.merge(h.substring(0, c).trim().toLowerCase(Locale.ROOT), h.substring(c + 1).trim(), (a, b) -> a + ", " + b);
            }
        }
        ByteArrayOutputStream body = new ByteArrayOutputStream();
        if ("chunked".equalsIgnoreCase(headers.get("transfer-encoding"))) {
            while (true) {
                String size = line(in);
                if (size == null) {
                    throw new IOException("connection closed inside a chunked body");
                }
                int n = Integer.parseInt(size.split(";", 2)[0].trim(), 16);
                if (n == 0) {
                    while (true) {
                        String trailer = line(in);
                        if (trailer == null || trailer.isEmpty()) {
                            break;
                        }
                    }
                    break;
                }
                body.write(in.readNBytes(n));
                line(in);
            }
        } else if (headers.containsKey("content-length")) {
            body.write(in.readNBytes(Integer.parseInt(headers.get("content-length"))));
        }
        return new Response(Integer.parseInt(parts[1]), headers, body.toByteArray());
    }

    private static String line(InputStream in) throws IOException {
        StringBuilder b = new StringBuilder();
        int c;
        while ((c = in.read()) != -1) {
            if (c == '\n') {
                int len = b.length();
                return len > 0 && b.charAt(len - 1) == '\r' ? b.substring(0, len - 1) : b.toString();
            }
            b.append((char) c);
        }
        return b.length() == 0 ? null : b.toString();
    }

    /** The fault happens now: waits in progress now or starting in the next 3 s count as across it. */
    public void markFault() {
        faultEpochMs = System.currentTimeMillis();
    }

    /** Acknowledged inserts so far. */
    public int inserted() {
        return acknowledged.size();
    }

    /** One GET on a fresh connection (the checks after the load). */
    public Response get(String path) throws Exception {
        return get(clientNs, vmIp, path);
    }

    /** One GET from {@code ns} to the application at {@code ip}, on a fresh connection. */
    public static Response get(NetNamespace ns, String ip, String path) throws Exception {
        try (Socket s = ClientThreads.connect(ns, ip, 80, 120_000)) {
            s.getOutputStream().write(("GET " + path + " HTTP/1.1\r\nHost: " + ip + "\r\nConnection: close\r\n\r\n")
                    .getBytes(StandardCharsets.US_ASCII));
            Response r = read(s.getInputStream());
            if (r == null) {
                throw new IOException("GET " + path + ": no answer");
            }
            return r;
        }
    }

    /** Stops the clients (each finishes its request in flight) and checks the survivor's database. */
    public Result stopAndCheck() throws Exception {
        running = false;
        clients.join(PATIENCE_MS + 5_000);
        Map<String, List<Long>> table = new LinkedHashMap<>();
        for (String line : get("/students.txt").text().split("\n")) {
            String[] f = line.split("\t");
            if (f.length >= 2) {
                table.computeIfAbsent(f[1], k -> new ArrayList<>()).add(Long.parseLong(f[0]));
            }
        }
        long missing = 0;
        long duplicated = 0;
        long wrongId = 0;
        for (Map.Entry<String, Long> e : acknowledged.entrySet()) {
            List<Long> ids = table.getOrDefault(e.getKey(), List.of());
            if (ids.isEmpty()) {
                if (++missing <= 5) {
                    problems.add("student " + e.getKey() + " (id " + e.getValue() + ") was acknowledged and is not in the survivor's table");
                }
            } else if (ids.size() > 1) {
                duplicated++;
                problems.add("student " + e.getKey() + " is in the survivor's table " + ids.size() + " times: ids " + ids);
            } else if (!ids.get(0).equals(e.getValue())) {
                wrongId++;
                problems.add("student " + e.getKey() + " was given id " + e.getValue() + ", the survivor has id " + ids.get(0));
            }
        }
        for (Map.Entry<String, List<Long>> e : table.entrySet()) {
            if (e.getKey().startsWith("s-" + run + "-") && e.getValue().size() > 1 && !acknowledged.containsKey(e.getKey())) {
                duplicated++;
                problems.add("student " + e.getKey() + " (never acknowledged) is in the table " + e.getValue().size() + " times");
            }
        }
        Response check = get("/check");
        long longest = 0;
        long across = 0;
        synchronized (waits) {
            for (long[] w : waits) {
                longest = Math.max(longest, w[1]);
                if (faultEpochMs > 0 && w[0] <= faultEpochMs + 3_000 && w[0] + w[1] >= faultEpochMs) {
                    across = Math.max(across, w[1]);
                }
            }
        }
        return new Result(requests.get(), failed.get(), broken.get(), acknowledged.size(), missing, duplicated, wrongId,
                check.status() == 200 ? check.text() : check.status() + " " + check.text(), longest, across, List.copyOf(problems));
    }

    @Override
    public void close() {
        running = false;
    }
}
