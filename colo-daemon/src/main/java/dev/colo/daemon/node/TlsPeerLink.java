package dev.colo.daemon.node;

import dev.colo.checkpoint.link.LinkEndpoint;
import dev.colo.checkpoint.link.LinkSession;
import dev.colo.checkpoint.link.PairCertificates;
import dev.colo.checkpoint.link.proto.Envelope;
import dev.colo.daemon.config.DaemonConfig;
import io.netty.channel.EventLoopGroup;

/**
 * The production link: a mutual-TLS {@link LinkEndpoint} server, plus a client on the node whose
 * name sorts first (one connection per pair, whichever side is primary). Events arrive on the
 * link's event loop; the node's router moves them to its lanes.
 */
public final class TlsPeerLink implements PeerLink {
    private final DaemonConfig cfg;
    private final EventLoopGroup group;
    private volatile LinkSession session;
    private LinkEndpoint server;
    private LinkEndpoint client;

    public TlsPeerLink(DaemonConfig cfg, EventLoopGroup group) {
        this.cfg = cfg;
        this.group = group;
    }

    @Override
    public void start(Listener listener) throws Exception {
        PairCertificates.NodeFiles tls = new PairCertificates.NodeFiles(cfg.link().certificate(), cfg.link().key(), cfg.link().ca());
        LinkEndpoint.Listener l = new LinkEndpoint.Listener() {
            @Override
            public void onReady(LinkSession s) {
                session = s;
                listener.onUp(s.peerNode());
            }

            @Override
            public void onMessage(LinkSession s, Envelope m) {
                if (s == session) {
                    listener.onMessage(m);
                }
            }

            @Override
            public void onClosed(LinkSession s, String reason) {
                if (session == s) {
                    session = null;
                    listener.onDown(reason);
                }
            }
        };
        server = LinkEndpoint.server(cfg.pair(), cfg.node().name(), group, cfg.link().listen(), tls, l);
        if (cfg.node().name().compareTo(cfg.peer().name()) < 0) {
            client = LinkEndpoint.client(cfg.pair(), cfg.node().name(), group, cfg.peer().link(), tls, l);
        }
    }

    @Override
    public boolean send(Envelope m) {
        LinkSession s = session;
        return s != null && s.send(m);
    }

    @Override
    public boolean writable() {
        LinkSession s = session;
        return s == null || s.writable();
    }

    @Override
    public boolean connected() {
        return session != null;
    }

    @Override
    public void close() {
        if (client != null) {
            client.close();
        }
        if (server != null) {
            server.close();
        }
        LinkSession s = session;
        if (s != null) {
            s.close();
        }
    }
}
