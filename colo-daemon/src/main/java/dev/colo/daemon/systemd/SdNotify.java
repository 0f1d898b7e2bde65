package dev.colo.daemon.systemd;

import com.sun.jna.Library;
import com.sun.jna.Native;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * systemd's readiness protocol through libsystemd's {@code sd_notify} (JNA). Outside systemd
 * ({@code NOTIFY_SOCKET} unset) every call is a no-op, as sd_notify itself does.
 */
public final class SdNotify {
    private static final Logger log = LoggerFactory.getLogger(SdNotify.class);

    interface LibSystemd extends Library {
        int sd_notify(int unsetEnvironment, String state);
    }

    private final LibSystemd lib;

    private SdNotify(LibSystemd lib) {
        this.lib = lib;
    }

    public static SdNotify load() {
        if (System.getenv("NOTIFY_SOCKET") == null) {
            return new SdNotify(null);
        }
        try {
            return new SdNotify(Native.load("systemd", LibSystemd.class));
        } catch (UnsatisfiedLinkError e) {
            log.atWarn().addKeyValue("reason", e.getMessage()).log("libsystemd not found; systemd will not hear READY or WATCHDOG");
            return new SdNotify(null);
        }
    }

    public boolean active() {
        return lib != null;
    }

    /** Watchdog interval systemd asked for, or 0. */
    public static long watchdogMicros() {
        String v = System.getenv("WATCHDOG_USEC");
        try {
            return v == null ? 0 : Long.parseLong(v);
        } catch (NumberFormatException e) {
            return 0;
        }
    }

    public void ready(String status) {
        send("READY=1\nSTATUS=" + status);
    }

    public void status(String status) {
        send("STATUS=" + status);
    }

    public void stopping() {
        send("STOPPING=1");
    }

    public void watchdog() {
        send("WATCHDOG=1");
    }

    private void send(String state) {
        if (lib == null) {
            return;
        }
        int rc = lib.sd_notify(0, state);
        if (rc < 0) {
            log.atWarn().addKeyValue("rc", rc).addKeyValue("state", state.replace('\n', ' ')).log("sd_notify failed");
        }
    }
}
