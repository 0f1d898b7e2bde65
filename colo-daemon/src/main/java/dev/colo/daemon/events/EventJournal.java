package dev.colo.daemon.events;

import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.function.Consumer;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import org.slf4j.event.Level;
import org.slf4j.spi.LoggingEventBuilder;

/**
 * The daemon's operator events: each one is logged as one line (constant message, key=value
 * context) and kept in a bounded ring for {@code colo events}, which can also follow new ones.
 * Thread-safe; subscribers are called on the recording thread and must not block.
 */
public final class EventJournal {
    private static final Logger log = LoggerFactory.getLogger("colo.events");

    private final int capacity;
    private final Map<String, Object> context;
    private final ArrayDeque<DaemonEvent> ring = new ArrayDeque<>();
    private final List<Consumer<DaemonEvent>> followers = new CopyOnWriteArrayList<>();
    private final java.util.function.LongSupplier wallMillis;
    private long seq;

    /** @param context fields on every event (vm, pair, node) */
    public EventJournal(int capacity, Map<String, Object> context) {
        this(capacity, context, System::currentTimeMillis);
    }

    /** @param wallMillis the clock events are stamped with (virtual in the pair simulation) */
    public EventJournal(int capacity, Map<String, Object> context, java.util.function.LongSupplier wallMillis) {
        this.capacity = capacity;
        this.context = new LinkedHashMap<>(context);
        this.wallMillis = wallMillis;
    }

    public DaemonEvent info(String kind, String message, Object... kv) {
        return record(Level.INFO, kind, message, kv);
    }

    /** An event another component already logged in its own words: kept for the stream, not logged again. */
    public DaemonEvent unlogged(String kind, String message, Object... kv) {
        return record(null, kind, message, kv);
    }

    public DaemonEvent warn(String kind, String message, Object... kv) {
        return record(Level.WARN, kind, message, kv);
    }

    public DaemonEvent error(String kind, String message, Object... kv) {
        return record(Level.ERROR, kind, message, kv);
    }

    private DaemonEvent record(Level level, String kind, String message, Object... kv) {
        if (kv.length % 2 != 0) {
            throw new IllegalArgumentException("key=value pairs expected");
        }
        Map<String, Object> fields = new LinkedHashMap<>(context);
        for (int i = 0; i < kv.length; i += 2) {
            fields.put((String) kv[i], kv[i + 1]);
        }
        DaemonEvent e;
        synchronized (this) {
            e = new DaemonEvent(++seq, wallMillis.getAsLong(), kind, message, java.util.Collections.unmodifiableMap(fields));
            ring.addLast(e);
            if (ring.size() > capacity) {
                ring.removeFirst();
            }
        }
        if (level != null) {
            LoggingEventBuilder b = log.atLevel(level).addKeyValue("event", kind);
            // A node's own threads already put node, vm, role and term on the line (MDC): a field
            // that only repeats one of them is left out.
            fields.forEach((k, v) -> {
                if (!String.valueOf(v).equals(org.slf4j.MDC.get(k))) {
                    b.addKeyValue(k, v);
                }
            });
            b.log(message);
        }
        for (Consumer<DaemonEvent> f : followers) {
            f.accept(e);
        }
        return e;
    }

    public synchronized List<DaemonEvent> recent() {
        return new ArrayList<>(ring);
    }

    /** Returns the backlog and delivers every later event to {@code follower} until removed. */
    public synchronized List<DaemonEvent> follow(Consumer<DaemonEvent> follower) {
        followers.add(follower);
        return new ArrayList<>(ring);
    }

    public void unfollow(Consumer<DaemonEvent> follower) {
        followers.remove(follower);
    }
}
