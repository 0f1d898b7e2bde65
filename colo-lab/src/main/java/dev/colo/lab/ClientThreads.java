package dev.colo.lab;

import dev.colo.host.posix.NetNamespace;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.util.ArrayList;
import java.util.List;

/**
 * The clients of a lab load: named daemon threads, each running one client; a client that throws
 * leaves a line in the load's problems instead of dying silently. Connections are made from the
 * client namespace.
 */
final class ClientThreads {
    interface Body {
        void run() throws Exception;
    }

    private final String prefix;
    private final List<String> problems;
    private final List<Thread> threads = new ArrayList<>();

    /** @param problems where a client's failure is written */
    ClientThreads(String prefix, List<String> problems) {
        this.prefix = prefix;
        this.problems = problems;
    }

    void start(String name, Body b) {
        Thread t = new Thread(() -> {
            try {
                b.run();
            } catch (Exception e) {
                problems.add(name + ": " + e);
            }
        }, prefix + "-" + name);
        t.setDaemon(true);
        threads.add(t);
        t.start();
    }

    /** Waits for every client to finish its request in flight. */
    void join(long eachMs) throws InterruptedException {
        for (Thread t : threads) {
            t.join(eachMs);
        }
    }

    /** A TCP connection from {@code ns} to {@code ip:port}, reads timing out after {@code patienceMs}. */
    static Socket connect(NetNamespace ns, String ip, int port, int patienceMs) throws Exception {
        return ns.call(() -> {
            Socket s = new Socket();
            s.connect(new InetSocketAddress(ip, port), 10_000);
            s.setSoTimeout(patienceMs);
            s.setTcpNoDelay(true);
            return s;
        });
    }
}
