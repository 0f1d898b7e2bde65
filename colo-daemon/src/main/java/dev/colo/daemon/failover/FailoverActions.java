package dev.colo.daemon.failover;

/** What the state machine asks the daemon to do. Each returns at once. */
public interface FailoverActions {
    /** Ask the witness (and the peer over the LAN) for a verdict; answer with {@code onVerdict}. */
    void probe();

    /** Primary: stop releasing output until told otherwise (we might be the one cut off). */
    void holdOutput();

    /** Primary: the secondary is back before the witness answered; release what was held back and go on comparing. */
    void resumeProtected();

    /** Primary: no secondary; release what is held and run without comparison. */
    void runUnprotected();

    /** Primary: a secondary is back; pair again (first checkpoint is full). */
    void reprotect();

    /** Secondary: take over in {@code term}: SVM direct on the LAN, gratuitous ARP. */
    void promote(long term);

    /**
     * Secondary: the SVM is stale (the primary went on serving without us), so it must never be
     * promoted; retire it and wait to be paired again.
     */
    void abandonSvm(String reason);

    /** Stop releasing output for good: another node is the primary. */
    void fence(String reason);
}
