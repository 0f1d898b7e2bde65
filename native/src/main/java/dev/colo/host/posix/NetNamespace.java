package dev.colo.host.posix;

import com.sun.jna.LastErrorException;
import java.io.IOException;
import java.util.concurrent.Callable;
import java.util.concurrent.atomic.AtomicReference;

/**
 * Runs code inside a named network namespace ({@code ip netns}). A network namespace belongs to a
 * thread, so this enters it on a fresh thread that ends afterwards; sockets created there stay in
 * that namespace for their whole life.
 */
public final class NetNamespace {
    private NetNamespace() {}

    public static <T> T call(String name, Callable<T> body) throws Exception {
        return callIn("/var/run/netns/" + name, body);
    }

    /** Like {@link #call} with a namespace file, e.g. {@code /proc/1/ns/net} for the host's. */
    public static <T> T callIn(String nsFile, Callable<T> body) throws Exception {
        String name = nsFile.startsWith("/var/run/netns/") ? nsFile.substring("/var/run/netns/".length()) : nsFile;
        AtomicReference<T> result = new AtomicReference<>();
        AtomicReference<Exception> failure = new AtomicReference<>();
        Thread t = new Thread(() -> {
            int fd;
            try {
                fd = Libc.INSTANCE.open(nsFile, Libc.O_CLOEXEC);
            } catch (LastErrorException e) {
                failure.set(new IOException("no network namespace " + name + ": " + Fd.describe(e), e));
                return;
            }
            try {
                Libc.INSTANCE.setns(fd, Libc.CLONE_NEWNET);
                result.set(body.call());
            } catch (LastErrorException e) {
                failure.set(new IOException("cannot enter network namespace " + name + ": " + Fd.describe(e), e));
            } catch (Exception e) {
                failure.set(e);
            } finally {
                Libc.INSTANCE.close(fd);
            }
        }, "netns-" + name);
        t.start();
        t.join();
        if (failure.get() != null) {
            throw failure.get();
        }
        return result.get();
    }
}
