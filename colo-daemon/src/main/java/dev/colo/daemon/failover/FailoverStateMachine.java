package dev.colo.daemon.failover;

import java.util.function.Consumer;

/**
 * Decides who serves clients. Pure: no threads, no clock, no IO.
 *
 * <p>Primary: heartbeats stop, output is held and the witness is asked. If the witness answers, the
 * primary runs unprotected (the secondary is the one gone); if not, it fences itself (it may be the
 * one cut off, and the secondary may take over). Secondary: heartbeats stop, the witness is asked;
 * it promotes only if the witness answers <em>and</em> the primary cannot be reached over the LAN
 * either, so a broken replication link alone never makes two primaries.
 *
 * <p>The promotion lease keeps the two decisions apart in time, so that no interleaving of a stall
 * and a crash lets a secondary promote an SVM the primary has already served past. A secondary
 * promotes on its own verdict only within {@code promotionLeaseNs} of its last heartbeat that the
 * primary confirmed (echoed) while protected by it; the primary serves without it only once
 * {@link #SOLO_MARGIN_NS} more than that has passed since it last heard from it. A secondary that
 * was itself stalled, or heard the primary while the primary could not hear it, thus finds its lease
 * expired instead of promoting a stale SVM. Meanwhile the primary holds its output, and its proxy
 * still answers pings and ARP for the VM, so a secondary asking the LAN sees it alive and retires.
 *
 * <p>It owns the failover term: a promotion takes the next term, and any node that learns of a newer
 * term than its own while it releases output (or may soon) fences itself. The term has nothing to
 * do with checkpoints; the coordinator numbers those.
 */
public final class FailoverStateMachine {

    public enum Role { PRIMARY, SECONDARY }

    public enum State {
        /** Primary running its first checkpoint to a secondary: output still released as is. */
        PAIRING,
        /** Primary with a secondary: output released on match or commit. */
        PROTECTED,
        /** Primary lost the secondary: output held while the witness is asked. */
        SUSPECT,
        /** Primary without a secondary: output released as is. */
        UNPROTECTED,
        /** Secondary without an SVM yet (not paired, or waiting for the first checkpoint). */
        IDLE,
        /** Secondary following the primary. */
        STANDBY,
        /** Secondary lost the primary: asking the witness. */
        PROBING,
        /** Secondary took over: now the primary, unprotected. */
        ACTIVE,
        /** Not allowed to release output: another node is primary. */
        FENCED
    }

    /** A state change and its evidence, for the operator log. */
    public record Transition(State from, State to, long term, String reason, long atNs) {}

    /** The witness's verdict. */
    public record Verdict(boolean witnessAnswered, boolean peerReachableOverLan, String evidence) {}

    /** How much longer than the secondary's lease the primary waits before serving without it. */
    public static final long SOLO_MARGIN_NS = 500_000_000L;

    private final FailoverActions actions;
    private final Consumer<Transition> onTransition;
    private final long heartbeatTimeoutNs;
    private final long promotionLeaseNs;
    /** Secondary: the lease of the current pairing, never longer than the primary's. */
    private long pairingLeaseNs;
    private final long reprotectBackoffNs;
    private State state;
    private long term;
    private long lastHeartbeatNs;
    private long stateSinceNs;
    private boolean protectionWanted;
    /** Secondary: the newest of our heartbeats' send times that the primary echoed while protected by us. */
    private long confirmedNs = Long.MIN_VALUE / 4;
    /** Primary in SUSPECT: the witness answered; we serve alone once the secondary's lease is surely over. */
    private String soloEvidence;

    /** A pair already protected: the primary PROTECTED, the secondary STANDBY. */
    public FailoverStateMachine(Role role, long term, long heartbeatTimeoutNs, long promotionLeaseNs, long reprotectBackoffNs,
            FailoverActions actions, Consumer<Transition> onTransition, long nowNs) {
        this(role == Role.PRIMARY ? State.PROTECTED : State.STANDBY, term, heartbeatTimeoutNs, promotionLeaseNs, reprotectBackoffNs, actions,
                onTransition, nowNs);
        this.confirmedNs = nowNs;
    }

    /** A node starting in {@code initial}: UNPROTECTED or IDLE for a daemon that has not paired yet. */
    public FailoverStateMachine(State initial, long term, long heartbeatTimeoutNs, long promotionLeaseNs, long reprotectBackoffNs,
            FailoverActions actions, Consumer<Transition> onTransition, long nowNs) {
        if (promotionLeaseNs < heartbeatTimeoutNs) {
            throw new IllegalArgumentException("the promotion lease (" + promotionLeaseNs / 1_000_000 + " ms) must be at least the heartbeat timeout ("
                    + heartbeatTimeoutNs / 1_000_000 + " ms)");
        }
        this.actions = actions;
        this.onTransition = onTransition;
        this.heartbeatTimeoutNs = heartbeatTimeoutNs;
        this.promotionLeaseNs = promotionLeaseNs;
        this.pairingLeaseNs = promotionLeaseNs;
        this.reprotectBackoffNs = reprotectBackoffNs;
        this.term = term;
        this.state = initial;
        this.protectionWanted = initial == State.PROTECTED;
        this.lastHeartbeatNs = nowNs;
        this.stateSinceNs = nowNs;
    }

    /** The primary side of the pair (serving, or paused from serving by fencing) or the secondary side. */
    public Role role() {
        return switch (state) {
            case IDLE, STANDBY, PROBING -> Role.SECONDARY;
            default -> Role.PRIMARY;
        };
    }

    public State state() {
        return state;
    }

    public long term() {
        return term;
    }

    /** True while this node may release output to clients. */
    public boolean releasing() {
        return state == State.PROTECTED || state == State.UNPROTECTED || state == State.PAIRING || state == State.ACTIVE;
    }

    private void state(State next, long nowNs, String why) {
        if (!allowed(state, next)) {
            throw new IllegalStateException("failover: illegal transition " + state + " -> " + next + " (" + why + ")");
        }
        Transition t = new Transition(state, next, term, why, nowNs);
        if (state == State.SUSPECT) {
            soloEvidence = null;
        }
        state = next;
        stateSinceNs = nowNs;
        onTransition.accept(t);
    }

    static boolean allowed(State from, State to) {
        return switch (from) {
            case PAIRING -> to == State.PROTECTED || to == State.UNPROTECTED || to == State.FENCED;
            case PROTECTED -> to == State.SUSPECT || to == State.FENCED || to == State.UNPROTECTED;
            case SUSPECT -> to == State.UNPROTECTED || to == State.FENCED || to == State.PROTECTED;
            case UNPROTECTED -> to == State.PAIRING || to == State.PROTECTED || to == State.FENCED;
            case IDLE -> to == State.STANDBY;
            case STANDBY -> to == State.PROBING || to == State.ACTIVE || to == State.IDLE;
            case PROBING -> to == State.ACTIVE || to == State.STANDBY || to == State.IDLE;
            case ACTIVE -> to == State.FENCED;
            case FENCED -> false;
        };
    }

    // --- events ---

    /**
     * Anything from the peer (every message proves it alive), carrying its term. A peer in a newer
     * term took over: if we release output, or may, we stop. A secondary learns the term by pairing.
     */
    public void onHeartbeat(long peerTerm, long nowNs) {
        lastHeartbeatNs = nowNs;
        if (peerTerm > term && (releasing() || state == State.SUSPECT)) {
            fence("peer is in term " + peerTerm + ", newer than our " + term + ": it took over", nowNs);
            return;
        }
        switch (state) {
            case SUSPECT -> {
                state(State.PROTECTED, nowNs, "heartbeat back before we served without the secondary");
                actions.resumeProtected();
            }
            case PROBING -> state(State.STANDBY, nowNs, "primary heartbeat back");
            case UNPROTECTED, PAIRING -> {
                // The secondary is there; re-protection is timed by doWork.
            }
            default -> {
                // nothing to change
            }
        }
    }

    /**
     * A heartbeat from the peer. Secondary: {@code echoedNs} is the send time of our newest heartbeat
     * that the primary had received, echoed only while it does not serve without us; it renews our
     * promotion lease. A primary that says it serves alone has gone past our SVM for good.
     */
    public void onPeerHeartbeat(long echoedNs, boolean peerServesAlone, long nowNs) {
        if (role() != Role.SECONDARY) {
            return;
        }
        if (peerServesAlone) {
            if (state == State.STANDBY || state == State.PROBING) {
                String why = "the primary's heartbeat says it serves without us: our SVM is stale and is retired; waiting to be paired again";
                retireSvm(why, nowNs);
            }
            return;
        }
        if (echoedNs > confirmedNs && echoedNs <= nowNs) {
            confirmedNs = echoedNs;
        }
    }

    /**
     * Primary holding its output: the secondary talks again, but runs no SVM it could promote (its
     * daemon restarted, or it retired the SVM). Nothing to wait for: serve without it.
     */
    public void onSecondaryWithoutSvm(long nowNs) {
        lastHeartbeatNs = nowNs;
        if (state == State.SUSPECT) {
            state(State.UNPROTECTED, nowNs, "the secondary answers again but runs no SVM it could promote (its daemon restarted, or it "
                    + "retired the SVM): serving unprotected, re-protecting after backoff");
            actions.runUnprotected();
        }
    }

    /** Secondary: we run an SVM we could promote; our heartbeats say so. */
    public boolean follows() {
        return state == State.STANDBY || state == State.PROBING;
    }

    /** Primary: our heartbeats echo the secondary's, renewing its lease, while we serve nothing past its SVM. */
    public boolean echoesPeer() {
        return state == State.PAIRING || state == State.PROTECTED || state == State.SUSPECT;
    }

    /** This node serves the VM without a secondary: a secondary still following it holds a stale SVM. */
    public boolean servesAlone() {
        return state == State.UNPROTECTED || state == State.ACTIVE;
    }

    public boolean protectionWanted() {
        return protectionWanted;
    }

    /**
     * The replication connection closed (reset or shut down by the peer's host): do not wait for
     * the heartbeat timeout, ask the witness now. A silent partition gives no such event and is
     * found by the timeout instead.
     */
    public void onLinkClosed(String why, long nowNs) {
        switch (state) {
            case PROTECTED -> {
                state(State.SUSPECT, nowNs, "replication link closed (" + why + "); holding output, asking the witness");
                actions.holdOutput();
                actions.probe();
            }
            case STANDBY -> {
                state(State.PROBING, nowNs, "replication link closed (" + why + "); asking the witness");
                actions.probe();
            }
            default -> {
                // Already deciding, or nothing to protect.
            }
        }
    }

    /** The secondary runs the first SVM of a pairing: it protects from checkpoint {@code seq} on. */
    public void onReprotected(long seq, long nowNs) {
        if (state == State.UNPROTECTED || state == State.PAIRING) {
            protectionWanted = true;
            state(State.PROTECTED, nowNs, "secondary protecting from checkpoint " + seq);
        }
    }

    /** The peer told us it serves the VM in newer term {@code peerTerm}: we are a stale primary. */
    public void onFenced(long peerTerm, String why, long nowNs) {
        if (state != State.FENCED && role() == Role.PRIMARY) {
            fence("peer fenced us: it serves the VM in term " + peerTerm + " (" + why + ")", nowNs);
        }
    }

    /** Primary: pairing with a secondary began (operator's {@code pair}, or a re-protection). */
    public void onPairingStarted(String why, long nowNs) {
        if (state == State.UNPROTECTED) {
            protectionWanted = true;
            state(State.PAIRING, nowNs, why);
        }
    }

    /** Primary: the pairing failed; serve unprotected and retry after the backoff. */
    public void onPairingFailed(String why, long nowNs) {
        if (state == State.PAIRING) {
            state(State.UNPROTECTED, nowNs, "pairing failed: " + why + "; serving unprotected, retrying after backoff");
        }
    }

    /**
     * Secondary: a primary in {@code primaryTerm} pairs with us; we follow its term, and never
     * promote later than its lease ({@code primaryLeaseNs}, 0 if it did not say) allows.
     */
    public void onPairRequest(long primaryTerm, long primaryLeaseNs) {
        if (role() == Role.SECONDARY && primaryTerm > term) {
            term = primaryTerm;
        }
        pairingLeaseNs = primaryLeaseNs > 0 ? Math.min(promotionLeaseNs, primaryLeaseNs) : promotionLeaseNs;
    }

    /** Secondary: the promotion lease in force for the current pairing. */
    public long pairingLeaseNs() {
        return pairingLeaseNs;
    }

    /** Secondary: the first checkpoint of a pairing runs as our SVM. */
    public void onPaired(long seq, long nowNs) {
        lastHeartbeatNs = nowNs;
        if (state == State.IDLE) {
            state(State.STANDBY, nowNs, "SVM running from the first checkpoint, " + seq);
        }
    }

    /** Either side: the operator ended protection. */
    public void onUnpaired(String why, long nowNs) {
        protectionWanted = false;
        switch (state) {
            case PROTECTED, PAIRING -> {
                state(State.UNPROTECTED, nowNs, why);
                actions.runUnprotected();
            }
            case STANDBY, PROBING -> state(State.IDLE, nowNs, why);
            default -> {
                // SUSPECT decides by the witness; UNPROTECTED, IDLE, ACTIVE and FENCED stay.
            }
        }
    }

    /**
     * Secondary: the primary handed over (its VM died, or a planned switchover). The primary has
     * fenced itself, so no witness is needed.
     */
    public void onHandover(String why, long nowNs) {
        if (state == State.STANDBY || state == State.PROBING) {
            term++;
            state(State.ACTIVE, nowNs, "primary handed over (" + why + "): promoting in term " + term);
            actions.promote(term);
        }
    }

    /** Primary: the secondary told us it cannot protect any more (its SVM died, or it is stopping). */
    public void onSecondaryLost(String why, long nowNs) {
        if (state == State.PROTECTED || state == State.PAIRING || state == State.SUSPECT) {
            state(State.UNPROTECTED, nowNs, "secondary gone (" + why + "); serving unprotected, re-protecting after backoff");
            actions.runUnprotected();
        }
    }

    /**
     * Secondary: while we had no word from the primary, the VM's address answered on the LAN:
     * the primary outlived the link, and once our promotion lease is over it serves without us, so
     * our SVM is stale for good.
     */
    public void onPrimaryServesWithoutUs(String evidence, long nowNs) {
        if ((state == State.STANDBY || state == State.PROBING) && pastLease(nowNs)) {
            // Within our lease the answer is output the primary held for us or forwarded
            // compared: it serves nothing past our SVM before the lease is over.
            String why = "the VM answered on the LAN while the primary was silent to us (" + evidence
                    + ") and our promotion lease is over: it lives and serves without us, our SVM is stale and is retired; waiting to be paired again";
            retireSvm(why, nowNs);
        }
    }

    /** Primary: our VM is gone (QEMU crashed or was killed): hand the service to the secondary. */
    public void onLocalVmLost(String why, long nowNs) {
        if (state == State.PROTECTED || state == State.SUSPECT) {
            fence("local VM lost (" + why + "); the secondary takes over", nowNs);
        }
    }

    public void onVerdict(Verdict v, long nowNs) {
        switch (state) {
            case SUSPECT -> {
                if (v.witnessAnswered()) {
                    soloEvidence = v.evidence();
                    long waitNs = soloAfterNs() - (nowNs - lastHeartbeatNs);
                    if (waitNs <= 0) {
                        goSolo(nowNs);
                    } else {
                        onTransition.accept(new Transition(state, state, term, "secondary lost, witness answered (" + v.evidence()
                                + "); holding output " + waitNs / 1_000_000 + " ms more, until the secondary's promotion lease is surely over",
                                nowNs));
                    }
                } else {
                    fence("secondary lost and witness silent (" + v.evidence() + "): we may be the one cut off", nowNs);
                }
            }
            case PROBING -> {
                long unconfirmedNs = nowNs - confirmedNs;
                boolean pastLease = pastLease(nowNs);
                if (v.witnessAnswered() && !v.peerReachableOverLan() && pastLease) {
                    // A stall of ours, or a primary that heard nothing from us while we heard it:
                    // it may have served without us since, and promoting would roll that back.
                    String why = "primary lost (" + v.evidence() + "), but it last confirmed us "
                            + (unconfirmedNs >= Long.MAX_VALUE / 8 ? "never" : unconfirmedNs / 1_000_000 + " ms ago")
                            + ", past our promotion lease of " + pairingLeaseNs / 1_000_000
                            + " ms: it may have served without us since, so our SVM may be stale and is retired, not promoted";
                    retireSvm(why, nowNs);
                } else if (v.witnessAnswered() && !v.peerReachableOverLan()) {
                    term++;
                    state(State.ACTIVE, nowNs, "primary lost, witness answered, primary unreachable over the LAN (" + v.evidence()
                            + "): promoting in term " + term);
                    actions.promote(term);
                } else if (v.witnessAnswered() && pastLease) {
                    // The primary outlived the link and our lease: it serves unprotected now (or
                    // will, once its witness answers), so our SVM falls behind for good. Promoting
                    // it later, when the primary dies, would roll back what the clients were told.
                    String why = "primary still reachable over the LAN while the replication link is down (" + v.evidence()
                            + "), past our promotion lease: it serves without us, our SVM is stale and is retired; waiting to be paired again";
                    retireSvm(why, nowNs);
                } else if (v.witnessAnswered()) {
                    // Within our lease the primary has served nothing past our SVM: it holds its
                    // output until the lease is surely over. A link stalled by loss is often back
                    // by then (its heartbeat brings us back to STANDBY); retiring now would cost a
                    // whole new pairing over that same bad link. Past the lease, we retire.
                    stateSinceNs = nowNs;
                    onTransition.accept(new Transition(state, state, term, "primary still reachable over the LAN while the replication link "
                            + "is silent (" + v.evidence() + "): keeping our SVM for the " + (pairingLeaseNs - unconfirmedNs) / 1_000_000
                            + " ms left of our promotion lease, the primary serves nothing past it before then", nowNs));
                } else {
                    // Not enough evidence to take over: ask again on the next tick.
                    stateSinceNs = nowNs;
                    onTransition.accept(new Transition(state, state, term, "witness silent: not promoting (" + v.evidence() + ")", nowNs));
                }
            }
            default -> {
                // A late verdict; nothing depends on it any more.
            }
        }
    }

    /** Primary: how long after the secondary's last heartbeat we may serve without it. */
    public long soloAfterNs() {
        return promotionLeaseNs + SOLO_MARGIN_NS;
    }

    private void goSolo(long nowNs) {
        state(State.UNPROTECTED, nowNs, "secondary lost, witness answered (" + soloEvidence + "), and its promotion lease is over (silent "
                + (nowNs - lastHeartbeatNs) / 1_000_000 + " ms): serving unprotected");
        actions.runUnprotected();
    }

    /**
     * Secondary: whether the primary may have served past our SVM: only once the lease of the last
     * heartbeat it confirmed is over (before that it holds its output for us).
     */
    private boolean pastLease(long nowNs) {
        return nowNs - confirmedNs > pairingLeaseNs;
    }

    /** Secondary: our SVM is (or may be) behind what the primary served; it is never promoted. */
    private void retireSvm(String why, long nowNs) {
        state(State.IDLE, nowNs, why);
        actions.abandonSvm(why);
    }

    private void fence(String why, long nowNs) {
        state(State.FENCED, nowNs, why);
        actions.fence(why);
    }

    /** Heartbeat timeouts, re-probing, re-protection backoff. */
    public void doWork(long nowNs) {
        long silent = nowNs - lastHeartbeatNs;
        switch (state) {
            case PROTECTED -> {
                if (silent > heartbeatTimeoutNs) {
                    state(State.SUSPECT, nowNs, "no heartbeat from the secondary for " + silent / 1_000_000 + " ms; holding output, asking the witness");
                    actions.holdOutput();
                    actions.probe();
                }
            }
            case STANDBY -> {
                if (silent > heartbeatTimeoutNs) {
                    state(State.PROBING, nowNs, "no heartbeat from the primary for " + silent / 1_000_000 + " ms; asking the witness");
                    actions.probe();
                }
            }
            case SUSPECT -> {
                if (soloEvidence != null) {
                    // The witness answered: only the lease is waited out (a later blip of the
                    // witness must not fence a primary whose secondary is simply gone).
                    if (silent >= soloAfterNs()) {
                        goSolo(nowNs);
                    }
                } else if (nowNs - stateSinceNs > heartbeatTimeoutNs) {
                    stateSinceNs = nowNs;
                    actions.probe();
                }
            }
            case PROBING -> {
                if (nowNs - stateSinceNs > heartbeatTimeoutNs) {
                    stateSinceNs = nowNs;
                    actions.probe();
                }
            }
            case UNPROTECTED -> {
                if (protectionWanted && silent < heartbeatTimeoutNs && nowNs - stateSinceNs > reprotectBackoffNs) {
                    stateSinceNs = nowNs;
                    actions.reprotect();
                }
            }
            default -> {
                // ACTIVE and FENCED wait for the operator or re-protection.
            }
        }
    }
}
