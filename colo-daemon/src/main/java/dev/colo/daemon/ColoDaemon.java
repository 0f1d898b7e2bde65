package dev.colo.daemon;

import dev.colo.daemon.config.ConfigException;
import dev.colo.daemon.config.ConfigParser;
import dev.colo.daemon.config.DaemonConfig;
import dev.colo.daemon.control.ControlServer;
import dev.colo.daemon.events.EventJournal;
import dev.colo.daemon.metrics.DaemonMetrics;
import dev.colo.daemon.systemd.SdNotify;
import dev.colo.daemon.control.ControlApi;
import dev.colo.daemon.node.NodeAssembly;
import dev.colo.host.libvirt.LibvirtHypervisor;
import dev.colo.hypervisor.HypervisorException;
import java.nio.file.Path;
import java.util.ArrayDeque;
import java.util.Deque;
import java.util.Map;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The daemon's composition root: reads the config, starts the components in order (metrics,
 * libvirt, the protected VM, the control socket), tells systemd it is ready, and on SIGTERM or a
 * thread that died unexpectedly stops them in reverse order.
 */
public final class ColoDaemon {
    private static final Logger log = LoggerFactory.getLogger(ColoDaemon.class);

    /** Exit codes, sysexits-style so systemd can tell a bad config (do not restart) from a crash. */
    public enum Exit {
        OK(0), SOFTWARE(70), UNAVAILABLE(69), CONFIG(78);

        public final int code;

        Exit(int code) {
            this.code = code;
        }
    }

    private final CountDownLatch stop = new CountDownLatch(1);
    private final CountDownLatch stopped = new CountDownLatch(1);
    private final AtomicInteger exit = new AtomicInteger(Exit.OK.code);
    private final Deque<AutoCloseable> started = new ArrayDeque<>();
    private volatile boolean signalled;

    /** Runs until SIGTERM or a fatal error; returns the exit code. */
    public static int run(Path configFile) {
        return new ColoDaemon().runDaemon(configFile);
    }

    private int runDaemon(Path configFile) {
        DaemonConfig cfg;
        try {
            cfg = ConfigParser.load(configFile);
        } catch (ConfigException e) {
            log.atError().addKeyValue("config", configFile).addKeyValue("reason", e.getMessage()).log("config rejected, not starting");
            System.err.println("colo daemon: " + e.getMessage());
            return Exit.CONFIG.code;
        }
        log.atInfo().addKeyValue("config", configFile).addKeyValue("settings", cfg.summary()).log("effective config");
        SdNotify notify = SdNotify.load();
        Thread.setDefaultUncaughtExceptionHandler((t, e) -> {
            log.atError().addKeyValue("thread", t.getName()).addKeyValue("reason", e.toString()).setCause(e)
                    .log("a daemon thread died unexpectedly; shutting down in order rather than running half-alive");
            exit.compareAndSet(Exit.OK.code, Exit.SOFTWARE.code);
            stop.countDown();
        });
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            signalled = true;
            log.atInfo().log("stop requested (SIGTERM or SIGINT); stopping components in reverse order");
            stop.countDown();
            try {
                stopped.await(90, TimeUnit.SECONDS);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        }, "colo-shutdown"));

        EventJournal events = new EventJournal(2000, Map.of("vm", cfg.vm().domain(), "pair", cfg.pair(), "node", cfg.node().name()));
        try {
            DaemonMetrics metrics = new DaemonMetrics(cfg.vm().domain());
            started.push(metrics);
            if (cfg.metrics().isPresent()) {
                metrics.start(cfg.metrics().get());
            }
            LibvirtHypervisor hv;
            try {
                hv = new LibvirtHypervisor(cfg.libvirt().uri());
            } catch (HypervisorException e) {
                log.atError().addKeyValue("uri", cfg.libvirt().uri()).addKeyValue("reason", e.getMessage())
                        .log("libvirt unreachable, not starting; start libvirtd (scripts/lab-up on a lab machine)");
                return finish(Exit.UNAVAILABLE, notify);
            }
            started.push(hv::close);
            NodeAssembly node = new NodeAssembly(cfg, hv, events, metrics);
            started.push(node);
            node.start();
            ControlApi vm = node.control();
            started.push(new ControlServer(cfg.controlSocket(), vm, events));
            String status = "protecting " + cfg.vm().domain() + " as " + cfg.node().role().name().toLowerCase();
            notify.ready(status);
            log.atInfo().addKeyValue("vm", cfg.vm().domain()).addKeyValue("role", cfg.node().role().name().toLowerCase())
                    .addKeyValue("control", cfg.controlSocket()).addKeyValue("metrics_port", metrics.port()).log("daemon ready");
            startWatchdog(notify, vm);
            stop.await();
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        } catch (Exception e) {
            log.atError().addKeyValue("reason", e.toString()).setCause(e).log("daemon failed to start");
            exit.compareAndSet(Exit.OK.code, Exit.SOFTWARE.code);
        }
        return finish(null, notify);
    }

    private int finish(Exit forced, SdNotify notify) {
        notify.stopping();
        while (!started.isEmpty()) {
            AutoCloseable c = started.pop();
            try {
                c.close();
            } catch (Exception e) {
                log.atWarn().addKeyValue("component", c.getClass().getSimpleName()).addKeyValue("reason", e.toString()).log("stop failed");
            }
        }
        int code = forced != null ? forced.code : exit.get();
        log.atInfo().addKeyValue("exit_code", code).log("daemon stopped");
        stopped.countDown();
        return code;
    }

    /** True when the JVM is already exiting because of a signal (main must not call System.exit). */
    public boolean signalled() {
        return signalled;
    }

    /** Pings systemd's watchdog from a thread that also proves the control thread answers. */
    private void startWatchdog(SdNotify notify, ControlApi vm) {
        long usec = SdNotify.watchdogMicros();
        if (!notify.active() || usec <= 0) {
            return;
        }
        Thread t = new Thread(() -> {
            while (stop.getCount() > 0) {
                try {
                    Map<String, Object> s = vm.status();
                    notify.watchdog();
                    notify.status(s.get("role") + " " + s.get("state") + " term " + s.get("term") + " checkpoint " + s.get("checkpoint"));
                    Thread.sleep(Math.max(100, usec / 2000));
                } catch (InterruptedException e) {
                    return;
                } catch (Exception e) {
                    log.atWarn().addKeyValue("reason", e.toString()).log("control thread did not answer; withholding the watchdog ping");
                    try {
                        Thread.sleep(Math.max(100, usec / 4000));
                    } catch (InterruptedException ie) {
                        return;
                    }
                }
            }
        }, "colo-watchdog");
        t.setDaemon(true);
        t.start();
    }
}
