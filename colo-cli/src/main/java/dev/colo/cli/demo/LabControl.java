package dev.colo.cli.demo;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.colo.cli.ControlClient;
import dev.colo.lab.HostPairLab;

/** One request to a lab host's daemon over its control socket, as the CLI sends it. */
public final class LabControl {
    private LabControl() {}

    /** The result, or an {@link IllegalStateException} with the daemon's reason and its log. */
    public static JsonNode call(HostPairLab.Host h, String op, String vm) {
        ObjectNode req = ControlClient.request(op);
        if (vm != null) {
            req.put("vm", vm);
        }
        try (ControlClient c = ControlClient.connect(h.socket)) {
            return c.call(req);
        } catch (ControlClient.Unreachable | ControlClient.Refused e) {
            throw new IllegalStateException(op + " on " + h.node + " failed: " + e.getMessage() + "\n--- " + h.node + " log:\n" + h.logText());
        }
    }
}
