package dev.colo.proxy.compare;

/** Why the comparator asked for a checkpoint. Each has its own counter. */
public enum Reason {
    /** TCP payload bytes differ at a stream offset. */
    PAYLOAD_MISMATCH("tcp payload mismatch"),
    /** SYN, FIN or RST differ between the two VMs. */
    TCP_CONTROL_MISMATCH("tcp control mismatch"),
    /** A UDP datagram differs. */
    UDP_MISMATCH("udp mismatch"),
    /** An ICMP message differs. */
    ICMP_MISMATCH("icmp mismatch"),
    /** Another frame (ARP, other IP, non-IP, malformed) differs. */
    FRAME_MISMATCH("frame mismatch"),
    /** A primary frame waited longer than the compare timeout for its secondary counterpart. */
    PRIMARY_TIMEOUT("primary output held too long"),
    /** The secondary produced output the primary did not produce within the compare timeout. */
    SECONDARY_TIMEOUT("secondary output unmatched too long"),
    /** Held output reached the queue bound. */
    QUEUE_FULL("held queue full"),
    /** The connection table reached its bound. */
    CONNECTION_TABLE_FULL("connection table full"),
    /** A checkpoint was requested and nothing committed for a long time; asking again. */
    RETRY("checkpoint requested again, none committed"),
    /** Asked for by an operator or the coordinator, not by comparison. */
    ON_DEMAND("on demand");

    private final String description;

    Reason(String description) {
        this.description = description;
    }

    public String description() {
        return description;
    }
}
