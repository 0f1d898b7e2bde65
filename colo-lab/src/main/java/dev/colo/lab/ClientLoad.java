package dev.colo.lab;

import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;

/**
 * A client that asks the VM's CGI counter again and again from the client namespace, one request at
 * a time with a long timeout (a request in flight during a failover is retransmitted by TCP, not
 * failed), and keeps every answer with its time.
 */
public final class ClientLoad implements AutoCloseable {
    /** One request: the counter it returned (-1: no answer) and when the answer came. */
    public record Answer(int count, long atNs, long tookNs) {}

    private final LabLan lan;
    private final List<Answer> answers = new CopyOnWriteArrayList<>();
    private final Thread thread;
    private volatile boolean running = true;

    public ClientLoad(LabLan lan) {
        this.lan = lan;
        this.thread = new Thread(this::run, "client-load");
        thread.start();
    }

    private void run() {
        while (running) {
            long t0 = System.nanoTime();
            int c = lan.counter(Duration.ofSeconds(25));
            answers.add(new Answer(c, System.nanoTime(), System.nanoTime() - t0));
            try {
                Thread.sleep(100);
            } catch (InterruptedException e) {
                return;
            }
        }
    }

    public List<Answer> stop() throws InterruptedException {
        running = false;
        thread.join(60_000);
        return new ArrayList<>(answers);
    }

    /** Requests that got no answer at all. */
    public static long unanswered(List<Answer> a) {
        return a.stream().filter(x -> x.count() < 0).count();
    }

    /** True when every answer is the previous one plus one: nothing the client saw was lost or repeated. */
    public static boolean continuous(List<Answer> a) {
        int prev = -1;
        for (Answer x : a) {
            if (x.count() < 0) {
                return false;
            }
            if (prev >= 0 && x.count() != prev + 1) {
                return false;
            }
            prev = x.count();
        }
        return true;
    }

    /**
     * Every answer counted higher than the one before: what holds when other clients increment the
     * same counter. A repeated or lower count would be an increment the survivor rolled back.
     */
    public static boolean increasing(List<Answer> a) {
        int prev = -1;
        for (Answer x : a) {
            if (x.count() < 0 || x.count() <= prev) {
                return false;
            }
            prev = x.count();
        }
        return true;
    }

    /** Longest time between two consecutive answers, in ms: what a client felt as the failover gap. */
    public static long longestGapMs(List<Answer> a) {
        long worst = 0;
        for (int i = 1; i < a.size(); i++) {
            worst = Math.max(worst, (a.get(i).atNs() - a.get(i - 1).atNs()) / 1_000_000);
        }
        return worst;
    }

    public static String describe(List<Answer> a) {
        StringBuilder b = new StringBuilder();
        for (Answer x : a) {
            b.append(x.count()).append('(').append(x.tookNs() / 1_000_000).append("ms) ");
        }
        return b.toString();
    }

    @Override
    public void close() throws InterruptedException {
        stop();
    }
}
