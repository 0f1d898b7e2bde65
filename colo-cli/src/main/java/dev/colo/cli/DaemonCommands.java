package dev.colo.cli;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.PrintWriter;
import java.nio.file.Path;
import java.time.Instant;
import java.time.ZoneId;
import java.time.format.DateTimeFormatter;
import java.util.Iterator;
import java.util.Map;
import java.util.concurrent.Callable;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

/** The operator verbs that talk to the local daemon: pair, unpair, status, failover, checkpoint, events. */
final class DaemonCommands {
    private DaemonCommands() {}

    /** Options every daemon verb shares. */
    static final class Common {
        @Option(names = "--socket", paramLabel = "PATH", description = "Control socket of the local daemon (default: $COLO_SOCKET or ${DEFAULT-VALUE}).",
                defaultValue = "${env:COLO_SOCKET:-/run/colo/colo.sock}")
        Path socket;

        @Option(names = "--json", description = "Print the daemon's answer as JSON (schema 1, see docs/operations.md).")
        boolean json;
    }

    /** Runs a request, prints, and maps failures to exit codes. */
    abstract static class Verb implements Callable<Integer> {
        @CommandLine.Spec
        CommandLine.Model.CommandSpec spec;

        @Mixin
        Common common;

        PrintWriter out() {
            return spec.commandLine().getOut();
        }

        PrintWriter err() {
            return spec.commandLine().getErr();
        }

        abstract ObjectNode request();

        abstract void print(JsonNode result);

        @Override
        public Integer call() {
            try (ControlClient c = ControlClient.connect(common.socket)) {
                JsonNode result = c.call(request());
                if (common.json) {
                    out().println(ControlClient.JSON.writerWithDefaultPrettyPrinter().writeValueAsString(result));
                } else {
                    print(result);
                }
                out().flush();
                return ExitCodes.OK;
            } catch (ControlClient.Unreachable e) {
                err().println("colo: " + e.getMessage());
                return ExitCodes.DAEMON_UNREACHABLE;
            } catch (ControlClient.Refused e) {
                err().println("colo " + spec.name() + ": " + e.getMessage());
                return ExitCodes.OPERATION_FAILED;
            } catch (JsonProcessingException e) {
                err().println("colo: cannot print the answer: " + e.getMessage());
                return ExitCodes.FAILED;
            }
        }
    }

    @Command(name = "status", mixinStandardHelpOptions = true, description = "Show the protected VM: role, state, term, checkpoint, peer, last checkpoint, queues and link.",
            footer = {"", "Examples:", "  colo status", "  colo status web1 --json"})
    static final class Status extends Verb {
        @Parameters(arity = "0..1", paramLabel = "DOMAIN", description = "The protected domain (default: the daemon's).")
        String domain;

        @Override
        ObjectNode request() {
            return withVm(ControlClient.request("status"), domain);
        }

        @Override
        void print(JsonNode r) {
            PrintWriter o = out();
            String row = "%-" + Math.max(10, r.path("vm").asText().length() + 2) + "s %-10s %-12s %-5s %-10s %-26s %s%n";
            o.printf(row, "VM", "ROLE", "STATE", "TERM", "CHECKPOINT", "PEER", "LINK");
            JsonNode p = r.path("peer");
            o.printf(row.replace("%s%n", "%s (last heartbeat %d ms ago)%n").replace("%-5s", "%-5d").replace("%-10s %-26s", "%-10d %-26s"),
                    r.path("vm").asText(), r.path("role").asText(), r.path("state").asText(), r.path("term").asLong(),
                    r.path("checkpoint").asLong(), p.path("node").asText() + "@" + p.path("address").asText(), p.path("link").asText(),
                    p.path("last_heartbeat_ms_ago").asLong());
            o.println();
            o.printf("  domain               %s%n", r.path("domain").asText("-"));
            JsonNode c = r.path("last_checkpoint");
            if (c.isMissingNode()) {
                o.printf("  last checkpoint      none yet%n");
            } else {
                o.printf("  last checkpoint      %d, %s ago, %s (%s), %s, paused %.1f ms, %d pages, %s on the wire, SVM ready %.1f ms%n",
                        c.path("seq").asLong(), age(c.path("age_ms").asLong()), c.path("trigger").asText(), c.path("reason").asText(),
                        c.path("outcome").asText(), c.path("paused_ms").asDouble(), c.path("dirty_pages").asLong(),
                        bytes(c.path("wire_bytes").asLong()), c.path("svm_ready_ms").asDouble());
            }
            o.printf("  checkpoints/minute   %d%n", r.path("checkpoints_per_minute").asLong());
            if (r.has("held_frames")) {
                o.printf("  held output          %d frames (matched so far %d, checkpoint requests %d)%n", r.path("held_frames").asLong(),
                        r.path("matched_frames").asLong(), r.path("checkpoint_requests").asLong());
            }
            if (r.has("buffered_ingress")) {
                o.printf("  buffered input       %d frames for the next SVM%n", r.path("buffered_ingress").asLong());
            }
            JsonNode copy = r.path("disk_copy");
            if (!copy.isMissingNode()) {
                o.printf("  disk copy            %s of %s, %.1f MiB/s, %s%n", bytes(copy.path("done_bytes").asLong()),
                        bytes(copy.path("total_bytes").asLong()), copy.path("rate_mib_s").asDouble(), timeLeft(copy));
            }
            for (JsonNode d : r.path("disks")) {
                if (d.has("mirror")) {
                    o.printf("  disk %-15s %s, mirror %s, %s written since the last acknowledged checkpoint%n", d.path("target").asText(),
                            bytes(d.path("size_bytes").asLong()), d.path("mirror").asText(), bytes(d.path("unacknowledged_bytes").asLong()));
                } else {
                    o.printf("  disk %-15s %s, copy %s (%s written)%n", d.path("target").asText(), bytes(d.path("size_bytes").asLong()),
                            d.path("copy").asText(), bytes(d.path("written_bytes").asLong()));
                }
            }
        }
    }

    @Command(name = "pair", mixinStandardHelpOptions = true, description = "Protect an existing libvirt domain with the peer named in the daemon's config.",
            footer = {"", "The domain is restarted once if its RAM is not yet a shared file or its NIC does not go through colo.",
                    "Waits until the first checkpoint reached the secondary (PROTECTED).", "", "Examples:", "  colo pair web1"})
    static final class Pair extends Verb {
        @Parameters(paramLabel = "DOMAIN", description = "The libvirt domain to protect.")
        String domain;

        @Option(names = "--peer", paramLabel = "HOST[:PORT]",
                description = "The peer you expect (address, address:port or node name); refused if the daemon's [peer] is another.")
        String peer;

        @Option(names = "--timeout", paramLabel = "SECONDS", defaultValue = "180", description = "Give up after this long (default ${DEFAULT-VALUE}).")
        int timeoutS;

        @Override
        public Integer call() {
            if (peer != null) {
                // The peer is the daemon's config; --peer only guards against pairing with the wrong one.
                try (ControlClient c = ControlClient.connect(common.socket)) {
                    JsonNode p = c.call(ControlClient.request("status")).path("peer");
                    String address = p.path("address").asText();
                    String host = address.contains(":") ? address.substring(0, address.lastIndexOf(':')) : address;
                    boolean same = peer.equals(address) || peer.equals(host) || peer.equals(p.path("node").asText())
                            || peer.equals(p.path("node").asText() + ":" + address.substring(address.lastIndexOf(':') + 1));
                    if (!same) {
                        err().println("colo pair: this daemon's peer is " + p.path("node").asText() + " at " + address + ", not " + peer
                                + "; change [peer] in its config (and restart it) to pair with another host");
                        return ExitCodes.OPERATION_FAILED;
                    }
                } catch (ControlClient.Unreachable e) {
                    err().println("colo: " + e.getMessage());
                    return ExitCodes.DAEMON_UNREACHABLE;
                } catch (ControlClient.Refused e) {
                    err().println("colo pair: " + e.getMessage());
                    return ExitCodes.OPERATION_FAILED;
                }
            }
            Thread progress = new Thread(this::showDiskCopy, "colo-pair-progress");
            progress.setDaemon(true);
            progress.start();
            try {
                return super.call();
            } finally {
                progress.interrupt();
            }
        }

        /** While pairing copies the VM's disks, one line every few seconds: how far, how fast, how long still. */
        private void showDiskCopy() {
            String last = "";
            long lastPrinted = 0;
            try {
                while (!Thread.currentThread().isInterrupted()) {
                    Thread.sleep(1000);
                    JsonNode copy;
                    try (ControlClient c = ControlClient.connect(common.socket)) {
                        copy = c.call(ControlClient.request("status")).path("disk_copy");
                    } catch (ControlClient.Unreachable | ControlClient.Refused e) {
                        return;
                    }
                    if (copy.isMissingNode()) {
                        continue;
                    }
                    long done = copy.path("done_bytes").asLong();
                    long total = copy.path("total_bytes").asLong();
                    String line = String.format(java.util.Locale.ROOT, "copying disks: %s of %s (%d%%), %.1f MiB/s, %s", bytes(done),
                            bytes(total), total > 0 ? done * 100 / total : 0, copy.path("rate_mib_s").asDouble(), timeLeft(copy));
                    if (!line.equals(last) && System.nanoTime() - lastPrinted > 3_000_000_000L) {
                        err().println(line);
                        err().flush();
                        last = line;
                        lastPrinted = System.nanoTime();
                    }
                }
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        }

        @Override
        ObjectNode request() {
            err().println("pairing " + domain + ": preparing the PVM, asking the secondary for a standby, copying writable disks and guest RAM, "
                    + "first checkpoint ...");
            err().flush();
            return withVm(ControlClient.request("pair"), domain).put("timeout_s", timeoutS);
        }

        @Override
        void print(JsonNode r) {
            JsonNode c = r.path("last_checkpoint");
            out().printf("%s PROTECTED by %s from checkpoint %d: first checkpoint %d pages, %s on the wire, PVM paused %.1f ms%n",
                    r.path("vm").asText(), r.path("peer").path("node").asText(), r.path("checkpoint").asLong(), c.path("dirty_pages").asLong(),
                    bytes(c.path("wire_bytes").asLong()), c.path("paused_ms").asDouble());
            for (JsonNode d : r.path("disks")) {
                out().printf("  disk %s: %s replicated (%s copied while pairing), every write mirrored%n", d.path("target").asText(),
                        bytes(d.path("size_bytes").asLong()), bytes(d.path("copied_bytes").asLong()));
            }
        }
    }

    @Command(name = "unpair", mixinStandardHelpOptions = true, description = "End protection; the VM keeps running unprotected on this (primary) node.",
            footer = {"", "Examples:", "  colo unpair web1"})
    static final class Unpair extends Verb {
        @Parameters(paramLabel = "DOMAIN")
        String domain;

        @Override
        ObjectNode request() {
            return withVm(ControlClient.request("unpair"), domain);
        }

        @Override
        void print(JsonNode r) {
            out().printf("%s is %s: no longer protected%n", r.path("vm").asText(), r.path("state").asText());
        }
    }

    @Command(name = "checkpoint", mixinStandardHelpOptions = true, description = "Take a checkpoint now and print its figures.",
            footer = {"", "Examples:", "  colo checkpoint web1"})
    static final class Checkpoint extends Verb {
        @Parameters(paramLabel = "DOMAIN")
        String domain;

        @Override
        ObjectNode request() {
            return withVm(ControlClient.request("checkpoint"), domain);
        }

        @Override
        void print(JsonNode r) {
            out().printf("checkpoint %d %s: PVM paused %.1f ms, %d dirty pages, %s raw, %s on the wire, device state %s, SVM ready %.1f ms%n",
                    r.path("seq").asLong(), r.path("outcome").asText(), r.path("paused_ms").asDouble(), r.path("dirty_pages").asLong(),
                    bytes(r.path("raw_bytes").asLong()), bytes(r.path("wire_bytes").asLong()), bytes(r.path("device_state_bytes").asLong()),
                    r.path("svm_ready_ms").asDouble());
        }
    }

    @Command(name = "failover", mixinStandardHelpOptions = true, description = "Move the service to the other node.",
            footer = {"", "  --planned  on the primary: a last checkpoint that leaves the PVM paused, then the hand-over (no request lost).",
                    "  --force    on the secondary: take over now, on your word (make sure the primary is really gone).", "",
                    "Examples:", "  colo failover web1 --planned", "  colo failover web1 --force --yes"})
    static final class FailoverVerb extends Verb {
        @Parameters(paramLabel = "DOMAIN")
        String domain;

        @Option(names = "--planned", description = "Planned switchover, run on the primary.")
        boolean planned;

        @Option(names = "--force", description = "Forced takeover, run on the secondary.")
        boolean force;

        @Option(names = {"-y", "--yes"}, description = "Do not ask for confirmation.")
        boolean yes;

        @Override
        public Integer call() {
            if (planned == force) {
                err().println("colo failover: say exactly one of --planned (on the primary) or --force (on the secondary)");
                return ExitCodes.USAGE;
            }
            if (!yes) {
                String console = System.console() == null ? null
                        : System.console().readLine("Move %s to the other node (%s)? [y/N] ", domain, planned ? "planned" : "forced");
                if (console == null || !console.trim().equalsIgnoreCase("y")) {
                    err().println("colo failover: not confirmed; nothing done (use --yes in scripts)");
                    return ExitCodes.FAILED;
                }
            }
            return super.call();
        }

        @Override
        ObjectNode request() {
            return withVm(ControlClient.request("failover"), domain).put("planned", planned).put("force", force);
        }

        @Override
        void print(JsonNode r) {
            out().printf("%s: this node is now %s (%s) in term %d%n", r.path("vm").asText(), r.path("state").asText(),
                    r.path("role").asText(), r.path("term").asLong());
        }
    }

    @Command(name = "events", mixinStandardHelpOptions = true, description = "The daemon's event stream: state changes, checkpoints, failovers.",
            footer = {"", "Examples:", "  colo events", "  colo events --follow", "  colo events --json | jq ."})
    static final class Events extends Verb {
        private static final DateTimeFormatter TIME = DateTimeFormatter.ofPattern("HH:mm:ss.SSS").withZone(ZoneId.systemDefault());

        @Parameters(arity = "0..1", paramLabel = "DOMAIN")
        String domain;

        @Option(names = {"-f", "--follow"}, description = "Keep printing new events until interrupted.")
        boolean follow;

        @Override
        public Integer call() {
            try (ControlClient c = ControlClient.connect(common.socket)) {
                c.stream(withVm(ControlClient.request("events"), domain).put("follow", follow), e -> {
                    if (common.json) {
                        out().println(e.toString());
                    } else {
                        out().println(line(e));
                    }
                    out().flush();
                });
                return ExitCodes.OK;
            } catch (ControlClient.Unreachable e) {
                err().println("colo: " + e.getMessage());
                return ExitCodes.DAEMON_UNREACHABLE;
            } catch (ControlClient.Refused e) {
                err().println("colo events: " + e.getMessage());
                return ExitCodes.OPERATION_FAILED;
            }
        }

        static String line(JsonNode e) {
            StringBuilder b = new StringBuilder();
            b.append(TIME.format(Instant.ofEpochMilli(e.path("time_ms").asLong()))).append(' ')
                    .append(String.format("%-20s", e.path("kind").asText())).append(' ').append(e.path("message").asText());
            Iterator<Map.Entry<String, JsonNode>> it = e.path("fields").fields();
            while (it.hasNext()) {
                Map.Entry<String, JsonNode> f = it.next();
                if (f.getKey().equals("pair") || f.getKey().equals("node") || f.getKey().equals("vm")) {
                    continue;
                }
                b.append(' ').append(f.getKey()).append('=').append(f.getValue().asText());
            }
            return b.toString();
        }

        @Override
        ObjectNode request() {
            throw new UnsupportedOperationException("events stream");
        }

        @Override
        void print(JsonNode result) {
            throw new UnsupportedOperationException("events stream");
        }
    }

    @Command(name = "daemon", mixinStandardHelpOptions = true, description = "Run the colo daemon in the foreground (what the systemd unit starts).",
            footer = {"", "Exit codes: 0 stopped cleanly, 69 libvirt unavailable, 70 internal failure, 78 bad config.", "",
                    "Examples:", "  colo daemon --config /etc/colo/web1.conf"})
    static final class Daemon implements Callable<Integer> {
        @Option(names = {"-c", "--config"}, paramLabel = "FILE", defaultValue = "/etc/colo/colo.conf",
                description = "Config file (default ${DEFAULT-VALUE}).")
        Path config;

        @Override
        public Integer call() {
            return dev.colo.daemon.ColoDaemon.run(config);
        }
    }

    static ObjectNode withVm(ObjectNode r, String domain) {
        if (domain != null) {
            r.put("vm", domain);
        }
        return r;
    }

    static String age(long ms) {
        return ms < 1000 ? ms + " ms" : ms < 120_000 ? ms / 1000 + " s" : ms / 60_000 + " min";
    }

    /** The copy's time left; before the first rate is known the daemon reports -1. */
    static String timeLeft(JsonNode copy) {
        long eta = copy.path("eta_s").asLong(-1);
        return eta < 0 ? "time left not known yet" : "about " + eta + " s left";
    }

    static String bytes(long b) {
        return b < 10_000 ? b + " B" : b < 10_000_000 ? b / 1024 + " KiB" : b < 10_000_000_000L ? b / (1024 * 1024) + " MiB"
                : String.format(java.util.Locale.ROOT, "%.1f GiB", b / (double) (1L << 30));
    }
}
