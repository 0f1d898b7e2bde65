package dev.colo.hypervisor;

/**
 * Guards against blocking hypervisor calls on a Netty event loop. Checked by class name so this
 * module needs no Netty: event loop threads are {@code FastThreadLocalThread}s.
 */
public final class Blocking {
    private Blocking() {}

    public static void assertAllowed(String operation) {
        Thread t = Thread.currentThread();
        for (Class<?> c = t.getClass(); c != null && c != Thread.class; c = c.getSuperclass()) {
            if (c.getName().equals("io.netty.util.concurrent.FastThreadLocalThread")) {
                throw new IllegalStateException("blocking hypervisor call '" + operation
                        + "' on Netty event loop thread " + t.getName() + "; run it on a worker thread");
            }
        }
    }
}
