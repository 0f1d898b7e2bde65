package dev.colo.proxy.compare;

import dev.colo.proxy.packet.FlowKey;
import java.util.HashMap;
import java.util.Map;

/**
 * The highest acknowledgement number the PVM has sent on each TCP flow (VM to client). At snapshot
 * N a frozen copy becomes the floor of generation N's comparator: the SVM loaded from N holds every
 * client byte the PVM had acknowledged by then, so the PVM may repeat those acknowledgements to the
 * client without waiting for the SVM's own. Beyond the floor, a PVM acknowledgement leaves only once
 * the SVM acknowledged as much: no client is ever told that bytes arrived which the SVM never got.
 */
public final class AckLedger {
    private static final int MAX_FLOWS = 1 << 16;
    private final Map<FlowKey, Long> maxAck;

    public AckLedger() {
        this(new HashMap<>());
    }

    private AckLedger(Map<FlowKey, Long> m) {
        this.maxAck = m;
    }

    void onPvmAck(FlowKey flow, long ack) {
        Long prev = maxAck.get(flow);
        if (prev == null || (int) (ack - prev) > 0) {
            if (prev == null && maxAck.size() >= MAX_FLOWS) {
                maxAck.clear(); // a bound, not a cache: forgetting only costs a wait for the SVM's own ack
            }
            maxAck.put(flow, ack);
        }
    }

    /** The floor for {@code flow}, or null when the PVM never acknowledged anything on it. */
    Long floor(FlowKey flow) {
        return maxAck.get(flow);
    }

    public AckLedger frozenCopy() {
        return new AckLedger(new HashMap<>(maxAck));
    }

    public int flows() {
        return maxAck.size();
    }
}
