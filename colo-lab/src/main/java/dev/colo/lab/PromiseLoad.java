package dev.colo.lab;

import dev.colo.host.posix.NetNamespace;
import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.OutputStream;
import java.net.DatagramPacket;
import java.net.DatagramSocket;
import java.net.InetAddress;
import java.net.Socket;
import java.net.SocketTimeoutException;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.atomic.AtomicLong;

/**
 * A realistic mixed load on the test guest from the client namespace, and the check of the COLO
 * promise against whatever VM serves afterwards. Clients:
 * <ul>
 *   <li>record writers on keep-alive connections (colo-svc, port 8): {@code APPEND} numbered
 *       records, one at a time, each answered;
 *   <li>a login client: {@code LOGIN} gives a random session token (it differs between PVM and SVM);
 *   <li>a UDP client: unique ids to udp-seq (port 9), retried until answered;
 *   <li>HTTP clients on fresh connections: {@code /index.html} (its Date header diverges every
 *       second), {@code /cgi-bin/date} and {@code /cgi-bin/counter};
 *   <li>one long-lived echo connection with random payloads.
 * </ul>
 * Nothing is retried at the application level over TCP: a connection that breaks, or a request
 * that gets no answer within the client's patience, is a failure the promise forbids.
 */
public final class PromiseLoad implements AutoCloseable {
    private static final long PATIENCE_MS = 30_000;
    private static final Duration SERVICE_START_MAX = Duration.ofSeconds(90);

    /** What the clients saw and what the survivor holds. */
    public record Result(long requests, long failed, long brokenConnections, long recordsAnswered, long recordsMissing,
            long recordsDuplicated, long tokens, long tokensRejected, long udpAnswered, long udpLost, long udpDuplicated, long echoes,
            boolean echoIntact, long longestWaitMs, long medianWaitMs, long longestAcrossFaultMs, List<String> longestWaits,
            List<String> problems) {
        public boolean promiseKept() {
            return failed == 0 && brokenConnections == 0 && recordsMissing == 0 && recordsDuplicated == 0 && tokensRejected == 0
                    && udpLost == 0 && udpDuplicated == 0 && echoIntact;
        }

        public String summary() {
            return String.format("requests=%d failed=%d broken_connections=%d records=%d missing=%d duplicated=%d tokens=%d rejected=%d "
                    + "udp=%d lost=%d duplicated=%d echoes=%d echo_intact=%s longest_wait_ms=%d median_wait_ms=%d across_fault_ms=%d longest=%s", requests, failed,
                    brokenConnections, recordsAnswered, recordsMissing, recordsDuplicated, tokens, tokensRejected, udpAnswered, udpLost,
                    udpDuplicated, echoes, echoIntact, longestWaitMs, medianWaitMs, longestAcrossFaultMs, String.join(",", longestWaits));
        }
    }

    private final NetNamespace clientNs;
    private final String vmIp;
    private final List<Wait> waits = Collections.synchronizedList(new ArrayList<>());

    /** One answered request: which client, when it asked (wall clock, as in the daemons' logs), how long it waited. */
    private record Wait(String client, long startEpochMs, long ms) {
        @Override
        public String toString() {
            return client + "@" + java.time.format.DateTimeFormatter.ofPattern("HH:mm:ss.SSS").withZone(java.time.ZoneOffset.UTC)
                    .format(java.time.Instant.ofEpochMilli(startEpochMs)) + "=" + ms + "ms";
        }
    }

    private void waited(String client, long t0) {
        long ms = (System.nanoTime() - t0) / 1_000_000;
        waits.add(new Wait(client, System.currentTimeMillis() - ms, ms));
    }
    private final List<String> problems = new CopyOnWriteArrayList<>();
    private final ClientThreads clients = new ClientThreads("promise", problems);
    private final List<String> records = new CopyOnWriteArrayList<>();
    private final List<String> tokens = new CopyOnWriteArrayList<>();
    private final Map<String, Integer> udpSends = new ConcurrentHashMap<>();
    private final List<String> udpAnswered = new CopyOnWriteArrayList<>();
    private final AtomicLong requests = new AtomicLong();
    private final AtomicLong failed = new AtomicLong();
    private final AtomicLong broken = new AtomicLong();
    private final AtomicLong echoes = new AtomicLong();
    private volatile boolean echoIntact = true;
    private volatile boolean running = true;
    private volatile long faultEpochMs = -1;
    private final String run = Long.toString(System.nanoTime() % 1_000_000, 36);

    public PromiseLoad(NetNamespace clientNs, String vmIp, int recordWriters) {
        this.clientNs = clientNs;
        this.vmIp = vmIp;
        awaitListening(8, SERVICE_START_MAX);
        awaitListening(7, SERVICE_START_MAX);
        for (int i = 0; i < recordWriters; i++) {
            int id = i;
            clients.start("records-" + i, () -> recordWriter(id));
        }
        clients.start("login", this::loginClient);
        clients.start("udp", this::udpClient);
        clients.start("http-index", () -> httpClient("/index.html"));
        clients.start("http-date", () -> httpClient("/cgi-bin/date"));
        clients.start("http-counter", () -> httpClient("/cgi-bin/counter"));
        clients.start("echo", this::echoClient);
    }

    /**
     * The guest's services start in the background after boot, and colo-svc listens only once the
     * guest kernel's random pool is ready (a fresh TCG guest without a hardware RNG needs seconds
     * for that, longer on a loaded host). A page answering on port 80 says nothing about port 8, so
     * the load waits here until each TCP service accepts: a refused connection before the service
     * ever listened is not a broken client connection, while one after it is, and counts.
     */
    private void awaitListening(int port, Duration max) {
        long t0 = System.nanoTime();
        long deadline = t0 + max.toNanos();
        for (int refused = 0;; refused++) {
            try (Socket probe = ClientThreads.connect(clientNs, vmIp, port, 1000)) {
                if (refused > 0) {
                    System.out.println("promise: the guest's port " + port + " accepted connections after " + refused
                            + " refused attempts, " + (System.nanoTime() - t0) / 1_000_000 + " ms");
                }
                return;
            } catch (Exception e) {
                if (System.nanoTime() > deadline) {
                    throw new IllegalStateException("the guest at " + vmIp + " did not accept connections on port " + port
                            + " within " + max.toSeconds() + " s: " + e, e);
                }
                try {
                    Thread.sleep(100);
                } catch (InterruptedException ie) {
                    Thread.currentThread().interrupt();
                    throw new IllegalStateException("interrupted while waiting for port " + port, ie);
                }
            }
        }
    }

    private Socket connect(int port) throws Exception {
        return ClientThreads.connect(clientNs, vmIp, port, (int) PATIENCE_MS);
    }

    private void pause(int maxMs, Random rnd) throws InterruptedException {
        Thread.sleep(rnd.nextInt(maxMs));
    }

    /** One keep-alive connection per writer; a new one every few hundred records. */
    private void recordWriter(int id) throws Exception {
        Random rnd = new Random(id);
        int n = 0;
        while (running) {
            try (Socket s = connect(8)) {
                BufferedReader in = new BufferedReader(new InputStreamReader(s.getInputStream(), StandardCharsets.US_ASCII));
                OutputStream out = s.getOutputStream();
                for (int k = 0; k < 200 && running; k++) {
                    String rec = run + "-w" + id + "-" + (++n);
                    long t0 = System.nanoTime();
                    requests.incrementAndGet();
                    out.write(("APPEND " + rec + "\n").getBytes(StandardCharsets.US_ASCII));
                    String answer;
                    try {
                        answer = in.readLine();
                    } catch (SocketTimeoutException e) {
                        failed.incrementAndGet();
                        problems.add("record " + rec + " unanswered after " + PATIENCE_MS + " ms");
                        return;
                    }
                    if (answer == null || !answer.startsWith("OK " + rec + " ")) {
                        broken.incrementAndGet();
                        problems.add("record " + rec + ": connection said " + answer);
                        return;
                    }
                    records.add(rec);
                    waited("records-" + id, t0);
                    pause(50, rnd);
                }
            } catch (IOException e) {
                broken.incrementAndGet();
                problems.add("record writer " + id + ": " + e);
                return;
            }
        }
    }

    private void loginClient() throws Exception {
        Random rnd = new Random(99);
        try (Socket s = connect(8)) {
            BufferedReader in = new BufferedReader(new InputStreamReader(s.getInputStream(), StandardCharsets.US_ASCII));
            OutputStream out = s.getOutputStream();
            while (running) {
                long t0 = System.nanoTime();
                requests.incrementAndGet();
                out.write("LOGIN\n".getBytes(StandardCharsets.US_ASCII));
                String answer = in.readLine();
                if (answer == null || !answer.startsWith("TOKEN ")) {
                    broken.incrementAndGet();
                    problems.add("login: connection said " + answer);
                    return;
                }
                tokens.add(answer.substring(6));
                waited("login", t0);
                pause(100, rnd);
            }
        } catch (SocketTimeoutException e) {
            failed.incrementAndGet();
            problems.add("login unanswered after " + PATIENCE_MS + " ms");
        } catch (IOException e) {
            broken.incrementAndGet();
            problems.add("login connection: " + e);
        }
    }

    private void udpClient() throws Exception {
        Random rnd = new Random(7);
        try (DatagramSocket s = clientNs.call(DatagramSocket::new)) {
            s.setSoTimeout(500);
            InetAddress vm = InetAddress.getByName(vmIp);
            int n = 0;
            byte[] buf = new byte[1500];
            while (running) {
                String id = run + "-u" + (++n);
                long t0 = System.nanoTime();
                requests.incrementAndGet();
                boolean answered = false;
                while (!answered && System.nanoTime() - t0 < PATIENCE_MS * 1_000_000L) {
                    byte[] b = id.getBytes(StandardCharsets.US_ASCII);
                    udpSends.merge(id, 1, Integer::sum);
                    s.send(new DatagramPacket(b, b.length, vm, 9));
                    try {
                        while (true) {
                            DatagramPacket p = new DatagramPacket(buf, buf.length);
                            s.receive(p);
                            String r = new String(p.getData(), 0, p.getLength(), StandardCharsets.US_ASCII);
                            if (r.endsWith(" " + id)) {
                                answered = true;
                                break;
                            }
                        }
                    } catch (SocketTimeoutException e) {
                        // sent again
                    }
                }
                if (!answered) {
                    failed.incrementAndGet();
                    problems.add("UDP " + id + " unanswered after " + PATIENCE_MS + " ms");
                    return;
                }
                udpAnswered.add(id);
                waited("udp", t0);
                pause(150, rnd);
            }
        }
    }

    private void httpClient(String path) throws Exception {
        Random rnd = new Random(path.hashCode());
        while (running) {
            long t0 = System.nanoTime();
            requests.incrementAndGet();
            try (Socket s = connect(80)) {
                s.getOutputStream().write(("GET " + path + " HTTP/1.0\r\nHost: " + vmIp + "\r\n\r\n").getBytes(StandardCharsets.US_ASCII));
                byte[] body = s.getInputStream().readAllBytes();
                String head = new String(body, 0, Math.min(body.length, 15), StandardCharsets.US_ASCII);
                if (!head.startsWith("HTTP/1.") || !head.contains(" 200")) {
                    failed.incrementAndGet();
                    problems.add("GET " + path + " answered " + head);
                    return;
                }
                waited("http " + path, t0);
            } catch (SocketTimeoutException e) {
                failed.incrementAndGet();
                problems.add("GET " + path + " unanswered after " + PATIENCE_MS + " ms");
                return;
            } catch (IOException e) {
                failed.incrementAndGet();
                problems.add("GET " + path + ": " + e);
                return;
            }
            pause(300, rnd);
        }
    }

    private void echoClient() throws Exception {
        Random rnd = new Random(3);
        try (Socket s = connect(7)) {
            BufferedReader in = new BufferedReader(new InputStreamReader(s.getInputStream(), StandardCharsets.US_ASCII));
            OutputStream out = s.getOutputStream();
            while (running) {
                String payload = Long.toHexString(rnd.nextLong()) + Long.toHexString(rnd.nextLong());
                long t0 = System.nanoTime();
                requests.incrementAndGet();
                out.write((payload + "\n").getBytes(StandardCharsets.US_ASCII));
                String back = in.readLine();
                if (!payload.equals(back)) {
                    echoIntact = false;
                    problems.add("echo sent " + payload + " got " + back);
                    return;
                }
                echoes.incrementAndGet();
                waited("echo", t0);
                pause(200, rnd);
            }
        } catch (SocketTimeoutException e) {
            echoIntact = false;
            failed.incrementAndGet();
            problems.add("echo unanswered after " + PATIENCE_MS + " ms");
        } catch (IOException e) {
            echoIntact = false;
            broken.incrementAndGet();
            problems.add("echo connection: " + e);
        }
    }

    /** The fault happens now: waits in progress now or starting in the next 3 s count as across it. */
    public void markFault() {
        faultEpochMs = System.currentTimeMillis();
    }

    private static final long ACROSS_FAULT_MS = 3_000;

    /** Stops the clients (each finishes its request in flight) and checks the survivor. */
    public Result stopAndCheck() throws Exception {
        running = false;
        clients.join(PATIENCE_MS + 5_000);
        List<String> survivorRecords = query("RECORDS");
        Map<String, Integer> held = new LinkedHashMap<>();
        for (String r : survivorRecords) {
            held.merge(r, 1, Integer::sum);
        }
        long missing = 0;
        long duplicated = 0;
        for (String r : records) {
            int c = held.getOrDefault(r, 0);
            if (c == 0) {
                missing++;
                if (missing <= 5) {
                    problems.add("record " + r + " was acknowledged and the survivor does not have it");
                }
            } else if (c > 1) {
                duplicated++;
                problems.add("record " + r + " is on the survivor " + c + " times");
            }
        }
        long rejected = 0;
        try (Socket s = connect(8)) {
            BufferedReader in = new BufferedReader(new InputStreamReader(s.getInputStream(), StandardCharsets.US_ASCII));
            OutputStream out = s.getOutputStream();
            for (String t : tokens) {
                out.write(("CHECK " + t + "\n").getBytes(StandardCharsets.US_ASCII));
                if (!"VALID".equals(in.readLine())) {
                    rejected++;
                    if (rejected <= 5) {
                        problems.add("token " + t + " held by a client is unknown to the survivor");
                    }
                }
            }
        }
        Map<String, Integer> applied = new LinkedHashMap<>();
        for (String id : query("UDPLOG")) {
            applied.merge(id, 1, Integer::sum);
        }
        long udpLost = 0;
        long udpDup = 0;
        for (String id : udpAnswered) {
            int c = applied.getOrDefault(id, 0);
            if (c == 0) {
                udpLost++;
                problems.add("UDP " + id + " was answered and the survivor never applied it");
            } else if (c > udpSends.getOrDefault(id, 0)) {
                udpDup++;
                problems.add("UDP " + id + " sent " + udpSends.get(id) + " times, applied " + c + " times");
            }
        }
        List<Wait> w = new ArrayList<>(waits);
        w.sort(java.util.Comparator.comparingLong(Wait::ms));
        long across = 0;
        for (Wait x : w) {
            if (faultEpochMs > 0 && x.startEpochMs() <= faultEpochMs + ACROSS_FAULT_MS && x.startEpochMs() + x.ms() >= faultEpochMs) {
                across = Math.max(across, x.ms());
            }
        }
        List<String> longest = new ArrayList<>();
        for (int i = w.size() - 1; i >= 0 && i >= w.size() - 3; i--) {
            longest.add(w.get(i).toString());
        }
        return new Result(requests.get(), failed.get(), broken.get(), records.size(), missing, duplicated, tokens.size(), rejected,
                udpAnswered.size(), udpLost, udpDup, echoes.get(), echoIntact, w.isEmpty() ? 0 : w.get(w.size() - 1).ms(),
                w.isEmpty() ? 0 : w.get(w.size() / 2).ms(), across, longest, List.copyOf(problems));
    }

    private List<String> query(String what) throws Exception {
        try (Socket s = connect(8)) {
            s.getOutputStream().write((what + "\n").getBytes(StandardCharsets.US_ASCII));
            BufferedReader in = new BufferedReader(new InputStreamReader(s.getInputStream(), StandardCharsets.US_ASCII));
            List<String> out = new ArrayList<>();
            String l;
            while ((l = in.readLine()) != null && !l.equals("END")) {
                out.add(l);
            }
            return out;
        }
    }

    /** How long a client waits for one answer before it counts the request as failed. */
    public static Duration patience() {
        return Duration.ofMillis(PATIENCE_MS);
    }

    @Override
    public void close() {
        running = false;
    }
}
