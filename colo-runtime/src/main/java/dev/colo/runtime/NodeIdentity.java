package dev.colo.runtime;

/**
 * Who is logging: the node and the VM it protects, plus its current role and failover term, which
 * change over a node's life. Lanes put these into the logging MDC before each task, so every line
 * from a node's threads says which node, role and term it came from (as ZooKeeper's myid does).
 */
public final class NodeIdentity {
    private final String node;
    private final String vm;
    private volatile String role;
    private volatile long term;

    public NodeIdentity(String node, String vm, String role) {
        this.node = node;
        this.vm = vm;
        this.role = role;
    }

    public String node() {
        return node;
    }

    public String vm() {
        return vm;
    }

    public String role() {
        return role;
    }

    public long term() {
        return term;
    }

    /** A new role or term; the calling thread's log lines show it at once. */
    public void update(String role, long term) {
        this.role = role;
        this.term = term;
        if (org.slf4j.MDC.get("node") != null) {
            org.slf4j.MDC.put("role", role);
            org.slf4j.MDC.put("term", Long.toString(term));
        }
    }

    /** A thread name: {@code colo[host-a/web1] control}. */
    public String threadName(String lane) {
        return "colo[" + node + "/" + vm + "] " + lane;
    }

    /** Sets the MDC keys node, vm, role, term on the current thread. */
    public void toMdc() {
        org.slf4j.MDC.put("node", node);
        org.slf4j.MDC.put("vm", vm);
        org.slf4j.MDC.put("role", role);
        org.slf4j.MDC.put("term", Long.toString(term));
    }
}
