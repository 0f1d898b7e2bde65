package dev.colo.daemon.node;

import dev.colo.checkpoint.coordinator.CheckpointRecord;
import dev.colo.daemon.control.ControlApi;
import dev.colo.daemon.control.OperationException;
import java.time.Duration;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;

/**
 * The control API on top of a node: each call runs on the node's control lane and waits, on the
 * control socket's thread, for its outcome. The operator's message comes from the node.
 */
public final class ControlFacade implements ControlApi {
    private static final long LINK_WAIT_MS = 6_000;

    private final Node node;

    public ControlFacade(Node node) {
        this.node = node;
    }

    private <T> T onControl(java.util.concurrent.Callable<T> c) throws Exception {
        return node.context().control().call(c);
    }

    @Override
    public Map<String, Object> status() throws Exception {
        return onControl(node::statusNow);
    }

    @Override
    public Map<String, Object> pair(String domain, Duration timeout) throws Exception {
        checkDomain(domain);
        // The link may be between reconnect attempts (its backoff tops out at 5 s): give it that long.
        long deadline = System.nanoTime() + LINK_WAIT_MS * 1_000_000L;
        while (!node.context().link().connected() && System.nanoTime() < deadline) {
            Thread.sleep(50);
        }
        CompletableFuture<Map<String, Object>> f = onControl(node::pairAsync);
        return await(f, timeout);
    }

    @Override
    public Map<String, Object> unpair(String domain) throws Exception {
        checkDomain(domain);
        return onControl(node::unpairNow);
    }

    @Override
    public Map<String, Object> checkpoint(String domain, Duration timeout) throws Exception {
        checkDomain(domain);
        CheckpointRecord r = await(onControl(node::checkpointAsync), timeout);
        return NodeStatus.checkpoint(r);
    }

    /**
     * {@code force} on the secondary: take over now, on the operator's word. {@code planned} on the
     * primary: a last checkpoint with the PVM left paused, then the handover; lossless.
     */
    @Override
    public Map<String, Object> failover(String domain, boolean planned, boolean force) throws Exception {
        checkDomain(domain);
        if (force) {
            return onControl(node::forceTakeover);
        }
        if (!planned) {
            throw new OperationException("say --planned (on the primary: a switchover without loss) or --force (on the secondary)");
        }
        return await(onControl(node::switchoverAsync), Duration.ofSeconds(60));
    }

    private void checkDomain(String domain) throws OperationException {
        String vm = node.context().cfg().vm().domain();
        if (domain != null && !domain.equals(vm)) {
            throw new OperationException("this daemon protects '" + vm + "'; '" + domain + "' is not configured here");
        }
    }

    private static <T> T await(CompletableFuture<T> f, Duration timeout) throws Exception {
        try {
            return f.get(timeout.toMillis(), TimeUnit.MILLISECONDS);
        } catch (ExecutionException e) {
            throw e.getCause() instanceof Exception x ? x : e;
        } catch (TimeoutException e) {
            throw new OperationException("no result within " + timeout.toSeconds() + " s; see 'colo events'");
        }
    }
}
