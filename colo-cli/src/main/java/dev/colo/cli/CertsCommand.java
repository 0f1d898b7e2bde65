package dev.colo.cli;

import dev.colo.checkpoint.link.PairCertificates;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.Callable;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/** {@code colo certs create}: a pair's own CA and one certificate per node, as PEM files. */
@Command(name = "certs", description = "Create the certificates the two daemons of a pair present to each other.",
        mixinStandardHelpOptions = true, subcommands = CertsCommand.Create.class)
final class CertsCommand implements Runnable {
    @CommandLine.Spec
    CommandLine.Model.CommandSpec spec;

    @Override
    public void run() {
        spec.commandLine().usage(spec.commandLine().getOut());
    }

    @Command(name = "create", mixinStandardHelpOptions = true,
            description = {"Create a new CA for one pair and a certificate for each node.",
                "Each pair gets its own CA, so a daemon of another pair is refused on the link."},
            footer = {"", "Example:", "  colo certs create --pair web1 --node host-a --node host-b --dir /etc/colo/pki/web1",
                "Then copy DIR/host-b/ to host-b. Private keys are written with mode 0600."})
    static final class Create implements Callable<Integer> {
        @CommandLine.Spec
        CommandLine.Model.CommandSpec spec;

        @Option(names = "--pair", required = true, description = "The pair's name (the protected VM's pair).")
        String pair;

        @Option(names = "--node", required = true, description = "A node name; give it once per host (two for a pair).")
        List<String> nodes;

        @Option(names = "--dir", required = true, description = "Where to write NODE/NODE.crt, NODE/NODE.key and NODE/pair-ca.crt.")
        Path dir;

        @Option(names = "--days", defaultValue = "825", description = "Validity in days (default ${DEFAULT-VALUE}).")
        int days;

        @Override
        public Integer call() throws Exception {
            if (days <= 0) {
                throw new CommandLine.ParameterException(spec.commandLine(), "--days must be positive, got " + days);
            }
            PairCertificates.Ca ca = PairCertificates.newCa(pair, Duration.ofDays(days));
            for (String node : nodes) {
                PairCertificates.NodeFiles f = PairCertificates.issue(ca, node, Duration.ofDays(days), dir.resolve(node));
                spec.commandLine().getOut().printf("%s: %s, %s, %s%n", node, f.certificate(), f.privateKey(), f.caCertificate());
            }
            return ExitCodes.OK;
        }
    }
}
