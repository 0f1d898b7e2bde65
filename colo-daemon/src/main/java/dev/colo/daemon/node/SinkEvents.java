package dev.colo.daemon.node;

import dev.colo.checkpoint.engine.SecondaryCheckpointSink;
import dev.colo.hypervisor.DomainRef;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * One pairing's sink events, passed to its {@link SecondaryRole}. A sink retired while it was
 * loading a checkpoint (stale SVM, unpair, re-pair) may still report that load; its events are
 * refused here, or its standby would become the SVM of a pairing that no longer exists (and a
 * stale SVM promotable).
 */
final class SinkEvents implements SecondaryCheckpointSink.Listener {
    private static final Logger log = LoggerFactory.getLogger(SinkEvents.class);

    private final SecondaryRole role;
    volatile SecondaryCheckpointSink owner;

    SinkEvents(SecondaryRole role) {
        this.role = role;
    }

    private boolean retired(String what, long seq) {
        if (owner != null && owner == role.sink()) {
            return false;
        }
        log.atInfo().addKeyValue("ckpt", seq).addKeyValue("event", what).log("late event from a retired sink ignored");
        return true;
    }

    @Override
    public void onSvmStarting(long seq, DomainRef svm) {
        // Before cont (or, for a reusable load, as it runs): the new SVM's first frames must find
        // their way, and the input kept for its generation waits in its socket until it runs.
        if (retired("svm_starting", seq)) {
            return;
        }
        try {
            role.svmStarting(seq, svm, owner);
        } catch (Exception e) {
            log.atWarn().addKeyValue("ckpt", seq).addKeyValue("reason", e.toString()).log("could not route traffic to the new SVM before it runs");
        }
    }

    @Override
    public void onSvmLoading(long seq, DomainRef svm) {
        if (!retired("svm_loading", seq)) {
            role.svmLoading(svm, owner);
        }
    }

    @Override
    public void onSvmReloading(long seq) {
        if (!retired("svm_reloading", seq)) {
            role.svmReloading(seq);
        }
    }

    @Override
    public int svmUnread(long seq) {
        if (retired("svm_unread", seq)) {
            return -1;
        }
        try {
            return role.svmUnread();
        } catch (Exception e) {
            return -1;
        }
    }

    @Override
    public void onSvmReloadAbandoned(long seq) {
        // Even from a retired sink: the path must not stay without input for the SVM.
        role.svmReloadAbandoned();
    }

    @Override
    public void onSvmReplaced(long seq, DomainRef svm, DomainRef retired) {
        if (!retired("svm_replaced", seq)) {
            SvmDisks disks = role.disks();
            if (disks != null) {
                disks.committed(); // a checkpoint ran on the copies: they are a whole disk of their lineage
            }
            role.svmReplaced(seq);
        }
    }

    @Override
    public void onCheckpointDropped(long seq, String why) {
        if (!retired("checkpoint_dropped", seq)) {
            role.checkpointDropped(seq);
        }
    }
}
