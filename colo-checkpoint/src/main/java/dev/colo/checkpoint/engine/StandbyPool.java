package dev.colo.checkpoint.engine;

import dev.colo.checkpoint.dirty.ShadowMemory;
import dev.colo.hypervisor.DomainRef;
import dev.colo.hypervisor.GuestRam;
import dev.colo.hypervisor.Hypervisor;
import dev.colo.hypervisor.HypervisorException;
import dev.colo.runtime.Lane;
import dev.colo.runtime.LifeCycle;
import java.util.ArrayList;
import java.util.List;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The secondary's hot standbys, each in one {@link Stage}: a QEMU starting (on the start lane, it
 * takes far longer than a checkpoint), started with its RAM mapped, or filled from the shadow and
 * ready to take the next checkpoint's dirty pages. At most one is filled (a filled standby holds the
 * last checkpoint's RAM; the next commit makes any other filled one stale), and one more is kept
 * on its way so that the next checkpoint does not wait for a QEMU start. Owned by the sink's lane.
 */
final class StandbyPool {
    private static final Logger log = LoggerFactory.getLogger(StandbyPool.class);
    private static final long RETRY_NS = 2_000_000_000L;

    enum Stage { STARTING, STARTED, FILLED }

    /** What the pool tells the sink, on the sink's lane. */
    interface Events {
        void started(DomainRef standby);

        void filled();

        void failed();
    }

    record Filled(DomainRef domain, GuestRam ram) {}

    private static final class Standby {
        final long n;
        Stage stage = Stage.STARTING;
        DomainRef domain;
        GuestRam ram;

        Standby(long n) {
            this.n = n;
        }
    }

    private final String pair;
    private final Hypervisor hv;
    private final SecondaryCheckpointSink.StandbyFactory factory;
    private final long guestRamBytes;
    private final Lane lane;
    private final Lane starter;
    private final LifeCycle life;
    private final Events events;
    private final List<Standby> standbys = new ArrayList<>();
    private final int wantedCount;
    private ShadowMemory shadow;
    private long next;
    private boolean retired;

    /** @param wantedCount how many standbys to keep (filled or on their way) */
    StandbyPool(String pair, Hypervisor hv, SecondaryCheckpointSink.StandbyFactory factory, long guestRamBytes, Lane lane, Lane starter,
            LifeCycle life, Events events, int wantedCount) {
        this.wantedCount = wantedCount;
        this.pair = pair;
        this.hv = hv;
        this.factory = factory;
        this.guestRamBytes = guestRamBytes;
        this.lane = lane;
        this.starter = starter;
        this.life = life;
        this.events = events;
    }

    void start(ShadowMemory shadowMemory) {
        this.shadow = shadowMemory;
        wanted();
    }

    boolean hasFilled() {
        return standbys.stream().anyMatch(s -> s.stage == Stage.FILLED);
    }

    /** True while some standby is still on its way (starting or waiting to be filled). */
    boolean mayStillDeliver() {
        return standbys.stream().anyMatch(s -> s.stage != Stage.FILLED);
    }

    Filled takeFilled() {
        for (Standby s : standbys) {
            if (s.stage == Stage.FILLED) {
                standbys.remove(s);
                return new Filled(s.domain, s.ram);
            }
        }
        throw new IllegalStateException("no filled standby");
    }

    /** Keeps one standby filled and, with two wanted, one more on its way. */
    void wanted() {
        if (retired) {
            return;
        }
        if (!hasFilled()) {
            for (Standby s : standbys) {
                if (s.stage == Stage.STARTED) {
                    fill(s);
                    break;
                }
            }
        }
        while (standbys.size() < wantedCount) {
            startOne();
        }
    }

    private void fill(Standby s) {
        refill(s.ram);
        s.stage = Stage.FILLED;
        events.filled();
    }

    /** Copies the whole shadow into {@code ram} (a standby that was filled before the last commit). */
    void refill(GuestRam ram) {
        for (long off = 0; off < guestRamBytes; off += shadow.chunkSize()) {
            int len = (int) Math.min(shadow.chunkSize(), guestRamBytes - off);
            ram.write(off, shadow.view(off, len));
        }
    }

    private void startOne() {
        Standby s = new Standby(++next);
        standbys.add(s);
        starter.execute(life.guard(() -> {
            DomainRef d = null;
            try {
                d = hv.define(factory.define(s.n));
                hv.start(d, true);
                GuestRam ram = hv.mapGuestRam(d);
                ram.prefault();
                DomainRef started = d;
                lane.execute(() -> onStarted(s, started, ram));
            } catch (RuntimeException ex) {
                DomainRef failed = d;
                lane.execute(() -> onFailed(s, failed, ex));
            }
        }));
    }

    private void onStarted(Standby s, DomainRef d, GuestRam ram) {
        s.domain = d;
        s.ram = ram;
        if (retired || !standbys.contains(s) || !life.accepting()) {
            retire(d, ram);
            return;
        }
        s.stage = Stage.STARTED;
        events.started(d);
        wanted();
    }

    private void onFailed(Standby s, DomainRef d, RuntimeException ex) {
        standbys.remove(s);
        if (d != null) {
            retire(d, null);
        }
        if (retired || !life.accepting()) {
            return;
        }
        log.atError().addKeyValue("pair", pair).addKeyValue("reason", String.valueOf(ex.getMessage()))
                .log("cannot start a standby; retrying, checkpoints are refused until one runs");
        events.failed();
        lane.schedule(RETRY_NS, life.guard(this::wanted));
    }

    /** Destroys and undefines {@code d}; the factory releases its NIC. */
    void retire(DomainRef d, GuestRam ram) {
        if (ram != null) {
            ram.close();
        }
        try {
            hv.destroy(d);
            hv.undefine(d);
        } catch (HypervisorException ex) {
            log.atWarn().addKeyValue("pair", pair).addKeyValue("domain", d.name()).addKeyValue("reason", ex.getMessage())
                    .log("cannot retire an old SVM or standby");
        } finally {
            factory.retired(d);
        }
    }

    /** Retires every standby (takeover, close); ones still starting are retired when they come up. */
    void retireAll() {
        retired = true;
        for (Standby s : List.copyOf(standbys)) {
            if (s.stage != Stage.STARTING) {
                retire(s.domain, s.ram);
            }
        }
        standbys.clear();
    }
}
