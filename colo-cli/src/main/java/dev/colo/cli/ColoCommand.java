package dev.colo.cli;

import java.io.IOException;
import java.io.InputStream;
import java.util.Properties;
import picocli.CommandLine;
import picocli.CommandLine.Command;

/** The {@code colo} launcher's root command. */
@Command(name = "colo",
        mixinStandardHelpOptions = true,
        versionProvider = ColoCommand.Version.class,
        description = "COLO non-stop service for KVM/QEMU VMs.",
        subcommands = {DaemonCommands.Status.class, DaemonCommands.Pair.class, DaemonCommands.Unpair.class, DaemonCommands.FailoverVerb.class,
            DaemonCommands.Checkpoint.class, DaemonCommands.Events.class, DaemonCommands.Daemon.class, dev.colo.cli.demo.DemoCommand.class,
            CompareCommand.class,
            CertsCommand.class, ColoCommand.VersionCommand.class, CommandLine.HelpCommand.class})
public final class ColoCommand implements Runnable {

    @CommandLine.Spec
    CommandLine.Model.CommandSpec spec;

    public static void main(String[] args) {
        // After SIGTERM the daemon returns while the JVM is already exiting; System.exit then just
        // waits for the shutdown hook, which is what we want.
        System.exit(commandLine().execute(args));
    }

    public static CommandLine commandLine() {
        CommandLine cl = new CommandLine(new ColoCommand());
        cl.setUsageHelpWidth(110);
        // A typo gets one clear line and a hint, not a page of help.
        cl.setParameterExceptionHandler((ex, args) -> {
            CommandLine cmd = ex.getCommandLine();
            cmd.getErr().println("colo: " + ex.getMessage());
            CommandLine.UnmatchedArgumentException.printSuggestions(ex, cmd.getErr());
            cmd.getErr().println("Try '" + cmd.getCommandSpec().qualifiedName() + " --help' for usage.");
            return ExitCodes.USAGE;
        });
        return cl;
    }

    @Override
    public void run() {
        spec.commandLine().usage(spec.commandLine().getOut());
    }

    /** Prints the version of colo and of the runtime it found. */
    @Command(name = "version", description = "Print colo's version.")
    static final class VersionCommand implements Runnable {
        @CommandLine.Spec
        CommandLine.Model.CommandSpec spec;

        @Override
        public void run() {
            spec.commandLine().getOut().println("colo " + Version.coloVersion() + " (java " + System.getProperty("java.version") + ")");
        }
    }

    static final class Version implements CommandLine.IVersionProvider {
        static String coloVersion() {
            Properties p = new Properties();
            try (InputStream in = ColoCommand.class.getResourceAsStream("/colo-version.properties")) {
                if (in != null) {
                    p.load(in);
                }
            } catch (IOException e) {
                return "unknown";
            }
            return p.getProperty("version", "unknown");
        }

        @Override
        public String[] getVersion() {
            return new String[] {"colo " + coloVersion()};
        }
    }
}
