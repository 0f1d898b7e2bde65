package dev.colo.daemon.events;

import ch.qos.logback.classic.pattern.ClassicConverter;
import ch.qos.logback.classic.spi.ILoggingEvent;
import java.util.Map;

/**
 * {@code %node} in a logback pattern: the node identity a node's threads put into the MDC, as
 * {@code node=host-a vm=web1 role=primary term=2 }, only the keys present (threads that are not a
 * node's print nothing). Every line of a daemon thus says which node, role and term it came from.
 */
public final class NodeContextConverter extends ClassicConverter {
    private static final String[] KEYS = {"node", "vm", "role", "term"};

    @Override
    public String convert(ILoggingEvent event) {
        Map<String, String> mdc = event.getMDCPropertyMap();
        if (mdc == null || mdc.isEmpty()) {
            return "";
        }
        StringBuilder b = new StringBuilder();
        for (String k : KEYS) {
            String v = mdc.get(k);
            if (v != null) {
                b.append(k).append('=').append(v).append(' ');
            }
        }
        return b.toString();
    }
}
