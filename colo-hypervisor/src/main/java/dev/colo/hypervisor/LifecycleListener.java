package dev.colo.hypervisor;

/** Receives lifecycle events on a hypervisor-owned thread; must not block. */
@FunctionalInterface
public interface LifecycleListener {
    void onLifecycle(LifecycleEvent event);
}
