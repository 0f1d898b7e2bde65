package dev.colo.cli;

import static dev.colo.cli.FaultMatrixIT.await;
import static dev.colo.cli.FaultMatrixIT.colo;
import static dev.colo.cli.FaultMatrixIT.state;
import static org.assertj.core.api.Assertions.assertThat;

import dev.colo.host.posix.Command;
import dev.colo.lab.HostPairLab;
import dev.colo.lab.LabLan;
import dev.colo.lab.PromiseLoad;
import java.time.Duration;
import java.util.Random;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;

/**
 * The COLO promise on real daemons, real QEMU and a realistic mixed load ({@link PromiseLoad}:
 * keep-alive record writers, session logins, UDP requests, Date-bearing HTTP, an echo stream): no
 * acknowledged request lost or applied twice, no connection broken, no token a client holds
 * unknown to the survivor, no UDP request lost or applied twice. Each case prints its figures.
 */
class PromiseIT {
    static final int KILLS = Integer.getInteger("colo.promise.kills", 3);
    static final int SWITCHOVERS = Integer.getInteger("colo.promise.switchovers", 20);

    static HostPairLab pairedLab(String tag) throws Exception {
        HostPairLab lab = new HostPairLab(tag);
        try {
            lab.startDaemons();
            assertThat(colo("pair", lab.domain, "--socket", lab.a.socket.toString())).isZero();
            lab.lan.awaitCounter(Duration.ofSeconds(120));
            return lab;
        } catch (Exception | AssertionError e) {
            lab.close();
            throw e;
        }
    }

    static void killPrimaryHost(HostPairLab lab, PromiseLoad load) throws Exception {
        if (load != null) {
            load.markFault();
        }
        killPrimaryHost(lab);
    }

    static void killPrimaryHost(HostPairLab lab) throws Exception {
        System.out.println("promise:   kill -9 of host-a's QEMU and daemon at " + java.time.Instant.now());
        Command.run(Duration.ofSeconds(5), "kill", "-9", Long.toString(HostPairLab.qemuPid(lab.domain)));
        lab.a.daemon.destroyForcibly().waitFor(10, TimeUnit.SECONDS);
    }

    /**
     * Kills the primary's QEMU and daemon: inside a checkpoint ({@code mode} 1, the kill lands
     * 0–400 ms after an on-demand checkpoint starts, while it pauses, ships or loads), right after
     * one (2), or at this instant (0). {@code markFault} runs just before the kill. Says when.
     */
    static String killPrimaryHost(HostPairLab lab, int mode, Random rnd, Runnable markFault) throws Exception {
        String when;
        if (mode == 1) {
            Thread ckpt = new Thread(() -> colo("checkpoint", lab.domain, "--socket", lab.a.socket.toString()));
            ckpt.start();
            int delay = rnd.nextInt(400);
            Thread.sleep(delay);
            when = "inside a checkpoint (+" + delay + " ms)";
            markFault.run();
            killPrimaryHost(lab);
            ckpt.join(30_000);
        } else if (mode == 2) {
            colo("checkpoint", lab.domain, "--socket", lab.a.socket.toString());
            when = "right after a checkpoint";
            markFault.run();
            killPrimaryHost(lab);
        } else {
            when = "at a random instant";
            markFault.run();
            killPrimaryHost(lab);
        }
        return when;
    }

    /** Watches both nodes for {@code ms}: never may the primary release output while the secondary serves. */
    static void neverTwoPrimaries(HostPairLab lab, long ms) throws InterruptedException {
        long end = System.nanoTime() + ms * 1_000_000L;
        while (System.nanoTime() < end) {
            String a = state(lab.a);
            String b = state(lab.b);
            assertThat(FaultMatrixIT.RELEASING.contains(a) && b.equals("ACTIVE")).as("two releasing primaries: a=" + a + " b=" + b).isFalse();
            Thread.sleep(100);
        }
    }

    /** The secondary's takeover as its log tells it, beside the clients' longest waits. */
    static void timeline(HostPairLab lab) {
        lab.b.logText().lines().filter(l -> l.contains("event=link_down") || l.contains("event=state ") || l.contains("event=promoted")
                || l.contains("event=garp")).forEach(l -> System.out.println("promise:   " + l.replaceAll(" node=.*? event=", " event=")));
    }

    /**
     * A packet trace of the clients' namespace for one trial, when {@code colo.promise.pcap} names a
     * directory (bench/promise sets it): kept only if the trial broke the promise, so that a rare
     * violation can be read packet by packet. tcpdump runs in the namespace and stops before it goes.
     */
    static final class ClientTrace implements AutoCloseable {
        private final Process tcpdump;
        private final java.nio.file.Path file;
        private boolean keep;

        private ClientTrace(Process tcpdump, java.nio.file.Path file) {
            this.tcpdump = tcpdump;
            this.file = file;
        }

        /** Null when no trace was asked for. */
        static ClientTrace start(HostPairLab lab, String name) throws Exception {
            String dir = System.getProperty("colo.promise.pcap", "");
            if (dir.isBlank()) {
                return null;
            }
            java.nio.file.Path file = java.nio.file.Path.of(dir).resolve(lab.domain + "-" + name + ".pcap");
            java.nio.file.Files.createDirectories(file.getParent());
            Process p = new ProcessBuilder("ip", "netns", "exec", lab.lan.ns().name(), "tcpdump", "-i", "any", "-n", "-U", "-s", "256", "-w",
                    file.toString()).redirectErrorStream(true).redirectOutput(ProcessBuilder.Redirect.DISCARD).start();
            ClientTrace t = new ClientTrace(p, file);
            t.keep = Boolean.getBoolean("colo.promise.pcap.keepAll"); // to study the waits of a trial that kept the promise
            return t;
        }

        void keep() {
            keep = true;
        }

        @Override
        public void close() throws Exception {
            tcpdump.destroy(); // SIGTERM: tcpdump flushes and closes the file
            if (!tcpdump.waitFor(5, TimeUnit.SECONDS)) {
                tcpdump.destroyForcibly();
            }
            if (keep) {
                System.out.println("promise:   packet trace of the clients' namespace kept: " + file);
            } else {
                java.nio.file.Files.deleteIfExists(file);
            }
        }
    }

    static void check(String what, PromiseLoad.Result r) {
        System.out.println("promise: " + what + ": " + r.summary());
        r.problems().stream().limit(10).forEach(p -> System.out.println("promise:   " + p));
        assertThat(r.promiseKept()).as(what + ": " + r.summary() + " " + r.problems()).isTrue();
        assertThat(r.recordsAnswered()).as("the record writers made progress").isPositive();
    }

    @Test
    void acknowledgedRequestsSurviveKillsOfThePrimaryAtRandomInstants() throws Exception {
        Random rnd = new Random(Long.getLong("colo.seed", System.nanoTime()));
        for (int trial = 1; trial <= KILLS; trial++) {
            int mode = trial % 3;
            try (HostPairLab lab = pairedLab("pk" + trial); ClientTrace trace = ClientTrace.start(lab, "trial-" + trial)) {
                PromiseLoad load = new PromiseLoad(lab.lan.ns(), LabLan.GUEST_IP, 6);
                Thread.sleep(2000 + rnd.nextInt(3000));
                String when = killPrimaryHost(lab, mode, rnd, load::markFault);
                await("host-b ACTIVE", lab, Duration.ofSeconds(30), () -> state(lab.b).equals("ACTIVE"));
                Thread.sleep(6000);
                timeline(lab);
                PromiseLoad.Result result = load.stopAndCheck();
                if (trace != null && !result.promiseKept()) {
                    trace.keep();
                }
                check("kill -9 of the primary " + when + " (trial " + trial + ")", result);
            }
        }
    }

    @Test
    void plannedSwitchoversLoseNothing() throws Exception {
        for (int trial = 1; trial <= SWITCHOVERS; trial++) {
            try (HostPairLab lab = pairedLab("ps" + trial)) {
                PromiseLoad load = new PromiseLoad(lab.lan.ns(), LabLan.GUEST_IP, 4);
                Thread.sleep(1500);
                load.markFault();
                assertThat(colo("failover", lab.domain, "--planned", "--yes", "--socket", lab.a.socket.toString()))
                        .as("planned switchover, trial " + trial + "\n" + FaultMatrixIT.tail(lab.a)).isZero();
                await("host-b ACTIVE", lab, Duration.ofSeconds(30), () -> state(lab.b).equals("ACTIVE"));
                assertThat(state(lab.a)).isEqualTo("FENCED");
                Thread.sleep(3000);
                timeline(lab);
                check("planned switchover (trial " + trial + " of " + SWITCHOVERS + ")", load.stopAndCheck());
            }
        }
    }

    @Test
    void aLinkCutThenThePrimaryDyingNeitherRollsBackNorMakesTwoPrimaries() throws Exception {
        try (HostPairLab lab = pairedLab("pcut")) {
            PromiseLoad load = new PromiseLoad(lab.lan.ns(), LabLan.GUEST_IP, 4);
            Thread.sleep(1500);
            LinkFaults.partition(lab);
            neverTwoPrimaries(lab, 6000);
            assertThat(state(lab.b)).as("the primary served on without it: the SVM is stale").isEqualTo("IDLE");
            LinkFaults.heal(lab);
            await("host-a PROTECTED again", lab, Duration.ofSeconds(150), () -> state(lab.a).equals("PROTECTED"));
            killPrimaryHost(lab, load);
            await("host-b ACTIVE", lab, Duration.ofSeconds(30), () -> state(lab.b).equals("ACTIVE"));
            Thread.sleep(4000);
            check("link cut for 6 s, re-protected, then the primary killed", load.stopAndCheck());
        }
        try (HostPairLab lab = pairedLab("pcut2")) {
            Thread.sleep(1000);
            LinkFaults.partition(lab);
            Thread.sleep(4000);
            killPrimaryHost(lab);
            long end = System.nanoTime() + 8_000_000_000L;
            while (System.nanoTime() < end) {
                assertThat(state(lab.b)).as("a stale SVM is never promoted (it would roll back what clients were told)").isNotEqualTo("ACTIVE");
                Thread.sleep(200);
            }
            LinkFaults.heal(lab);
            System.out.println("promise: link cut, then the primary killed during the cut: the secondary stayed " + state(lab.b)
                    + " (its SVM is stale; promoting it would roll back)");
        }
    }
}
