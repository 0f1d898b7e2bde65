package dev.colo.cli;

import static dev.colo.cli.FaultMatrixIT.await;
import static dev.colo.cli.FaultMatrixIT.state;
import static dev.colo.cli.PromiseIT.killPrimaryHost;
import static org.assertj.core.api.Assertions.assertThat;

import dev.colo.lab.HostPairLab;
import dev.colo.lab.LabLan;
import dev.colo.lab.StudentsLoad;
import java.time.Duration;
import java.util.Random;
import org.junit.jupiter.api.Test;

/**
 * The workload colo exists for, on real daemons and QEMU: the web + SQL guest (nginx, PHP and
 * PostgreSQL with its cluster on a virtio disk, fsync on) paired with its disk copied while it
 * runs, clients inserting students through the form and reading the list, and kill -9 of the
 * primary's QEMU and daemon at random instants, inside and right after checkpoints. After each:
 * every insert a client saw acknowledged is in the survivor's table exactly once with the id it was
 * given, PostgreSQL's own checker finds the table sound, and the application serves on.
 */
class DiskReplicationIT {
    static final int KILLS = Integer.getInteger("colo.disk.kills", 3);

    static HostPairLab pairedAppLab(String tag) throws Exception {
        HostPairLab lab = new HostPairLab("colo-it-" + tag + "-", tag, HostPairLab.Guest.APP);
        try {
            lab.startDaemons();
            long t0 = System.nanoTime();
            ColoRun pair = ColoRun.shown("pair", lab.domain, "--socket", lab.a.socket.toString());
            assertThat(pair.code()).as(pair.err()).isZero();
            assertThat(lab.a.logText()).contains("event=disk_copied");
            awaitServing(lab, Duration.ofSeconds(120));
            System.out.printf("disk: paired and serving %.1f s after colo pair%n", (System.nanoTime() - t0) / 1e9);
            // What an operator sees (docs/operations.md quotes it): the disks on both sides.
            ColoRun.shown("status", "--socket", lab.a.socket.toString());
            ColoRun.shown("status", "--socket", lab.b.socket.toString());
            return lab;
        } catch (Exception | AssertionError e) {
            lab.close();
            throw e;
        }
    }

    static void awaitServing(HostPairLab lab, Duration max) throws Exception {
        await("the students application answers /health", lab, max, () -> {
            String body = lab.lan.httpGet("/health", Duration.ofSeconds(5));
            return body != null && body.trim().equals("ok");
        });
    }

    static void check(String what, StudentsLoad.Result r) {
        System.out.println("disk: " + what + ": " + r.summary());
        r.problems().stream().limit(10).forEach(p -> System.out.println("disk:   " + p));
        assertThat(r.promiseKept()).as(what + ": " + r.summary() + " " + r.problems()).isTrue();
        assertThat(r.inserted()).as("the writers made progress").isPositive();
    }

    /** Kills the primary now, lets the survivor serve the clients 6 s, then checks its table. */
    static void killThenCheck(HostPairLab lab, StudentsLoad load, String what) throws Exception {
        load.markFault();
        killPrimaryHost(lab);
        await("host-b ACTIVE", lab, Duration.ofSeconds(30), () -> state(lab.b).equals("ACTIVE"));
        Thread.sleep(6000);
        check(what, load.stopAndCheck());
    }

    @Test
    void acknowledgedInsertsSurviveKillsOfThePrimary() throws Exception {
        Random rnd = new Random(Long.getLong("colo.seed", System.nanoTime()));
        for (int trial = 1; trial <= KILLS; trial++) {
            int mode = trial % 3;
            try (HostPairLab lab = pairedAppLab("dk" + trial)) {
                StudentsLoad load = new StudentsLoad(lab.lan.ns(), LabLan.GUEST_IP, 4);
                Thread.sleep(3000 + rnd.nextInt(3000));
                String when = killPrimaryHost(lab, mode, rnd, load::markFault);
                await("host-b ACTIVE", lab, Duration.ofSeconds(30), () -> state(lab.b).equals("ACTIVE"));
                Thread.sleep(6000);
                check("kill -9 of the primary " + when + " (trial " + trial + ")", load.stopAndCheck());
            }
        }
    }

    @Test
    void aLostSecondaryCatchesUpFromTheKeptWritesAndThenProtectsEveryInsert() throws Exception {
        try (HostPairLab lab = pairedAppLab("dks")) {
            StudentsLoad load = new StudentsLoad(lab.lan.ns(), LabLan.GUEST_IP, 4);
            Thread.sleep(3000);
            await("host-b names its SVM", lab, Duration.ofSeconds(30), () -> FaultMatrixIT.status(lab.b).hasNonNull("domain"));
            String svm = FaultMatrixIT.status(lab.b).path("domain").asText();
            System.out.println("disk:   kill -9 of host-b's daemon and SVM " + svm + " at " + java.time.Instant.now());
            lab.b.daemon.destroyForcibly().waitFor(10, java.util.concurrent.TimeUnit.SECONDS);
            dev.colo.host.posix.Command.run(Duration.ofSeconds(5), "kill", "-9", Long.toString(HostPairLab.qemuPid(svm)));
            await("host-a UNPROTECTED", lab, Duration.ofSeconds(30), () -> state(lab.a).equals("UNPROTECTED"));
            int before = load.inserted();
            Thread.sleep(3000);
            lab.startDaemon(lab.b);
            await("host-a PROTECTED again", lab, Duration.ofSeconds(180), () -> state(lab.a).equals("PROTECTED"));
            System.out.println("disk:   " + (load.inserted() - before) + " inserts while host-b was away; re-protected at " + java.time.Instant.now());
            // Its copy was complete: the primary kept every write since, so nothing is copied again.
            assertThat(lab.b.logText()).contains("disk_copies=resumed");
            assertThat(lab.a.logText()).contains("secondary resumed its disk copies");
            Thread.sleep(3000);
            killThenCheck(lab, load, "host-b lost, its copy resumed from the kept writes, then the primary killed");
        }
    }

    @Test
    void aLinkCutDuringHeavyWritesLosesNothing() throws Exception {
        try (HostPairLab lab = pairedAppLab("dkc")) {
            StudentsLoad load = new StudentsLoad(lab.lan.ns(), LabLan.GUEST_IP, 8);
            Thread.sleep(2000);
            LinkFaults.partition(lab);
            PromiseIT.neverTwoPrimaries(lab, 6000);
            LinkFaults.heal(lab);
            await("host-a PROTECTED again", lab, Duration.ofSeconds(180), () -> state(lab.a).equals("PROTECTED"));
            Thread.sleep(3000);
            killThenCheck(lab, load, "link cut for 6 s under 8 writers, re-protected, then the primary killed");
        }
    }

    /** A secondary that cannot hold the disks, and a missing image: refused with one line each, and nothing changed. */
    @Test
    void badDisksAreRefusedInOneLineAndNothingChanges() throws Exception {
        try (HostPairLab lab = new HostPairLab("colo-it-dkb-", "dkb", HostPairLab.Guest.APP)) {
            java.nio.file.Path small = lab.qemuDir.resolve("disks-host-b");
            java.nio.file.Files.createDirectories(small);
            dev.colo.host.posix.Command.run(Duration.ofSeconds(10), "mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", small.toString()).orThrow();
            try {
                lab.startDaemons();
                ColoRun full = ColoRun.shown("pair", lab.domain, "--socket", lab.a.socket.toString());
                assertThat(full.code()).isNotZero();
                assertThat(full.err()).contains("cannot hold the VM's disks").contains("the disks need 1.0 GiB").contains("nothing was changed");
                assertThat(full.err().strip().lines().filter(l -> l.startsWith("colo pair:")).count()).isEqualTo(1);
                assertThat(domainState(lab.domain)).as("the domain was not started").isEqualTo("shut off");
                assertThat(java.nio.file.Files.list(small.resolve(lab.domain)).count()).as("no copy made").isZero();

                java.nio.file.Files.delete(lab.qemuDir.resolve("data.qcow2"));
                ColoRun missing = ColoRun.shown("pair", lab.domain, "--socket", lab.a.socket.toString());
                assertThat(missing.code()).isNotZero();
                assertThat(missing.err()).contains("vdb has no image at").contains("data.qcow2");
                assertThat(domainState(lab.domain)).isEqualTo("shut off");
            } finally {
                dev.colo.host.posix.Command.run(Duration.ofSeconds(10), "umount", "-l", small.toString());
            }
        }
    }

    static String domainState(String domain) {
        return dev.colo.host.posix.Command.run(Duration.ofSeconds(10), "virsh", "-c", "qemu:///system", "domstate", domain).out().trim();
    }
}
