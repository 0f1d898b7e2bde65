package dev.colo.daemon.control;

import java.time.Duration;
import java.util.Map;

/**
 * What the control socket can ask of the daemon. Each call returns a JSON-able map or throws
 * {@link OperationException} with a message meant for the operator.
 */
public interface ControlApi {
    Map<String, Object> status() throws Exception;

    Map<String, Object> pair(String domain, Duration timeout) throws Exception;

    Map<String, Object> unpair(String domain) throws Exception;

    Map<String, Object> checkpoint(String domain, Duration timeout) throws Exception;

    Map<String, Object> failover(String domain, boolean planned, boolean force) throws Exception;
}
