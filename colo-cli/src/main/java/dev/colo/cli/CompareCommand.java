package dev.colo.cli;

import dev.colo.proxy.standalone.CompareOptions;
import dev.colo.proxy.standalone.Endpoint;
import dev.colo.proxy.standalone.StandaloneCompare;
import java.util.concurrent.Callable;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/** {@code colo compare}: the standalone comparator, a drop-in for QEMU's colo-compare object. */
@Command(name = "compare",
        description = {
            "Run the packet comparator standalone, in place of QEMU's colo-compare object.",
            "Sockets use QEMU's chardev syntax: tcp:HOST:PORT (connect), tcp:HOST:PORT,server (listen),",
            "unix:PATH or unix:PATH,server. Frames use QEMU's be32 length framing."},
        footer = {"", "Example (PVM filters connect to these listening sockets):",
            "  colo compare --primary-in tcp:127.0.0.1:9003,server --secondary-in tcp:127.0.0.1:9004,server \\",
            "               --outdev tcp:127.0.0.1:9005,server --notify-dev tcp:127.0.0.1:9009,server",
            "", "Exit codes: 0 stopped cleanly, 2 usage error, 4 a socket could not be opened."},
        mixinStandardHelpOptions = true)
final class CompareCommand implements Callable<Integer> {
    static final class EndpointConverter implements CommandLine.ITypeConverter<Endpoint> {
        @Override
        public Endpoint convert(String value) {
            try {
                return Endpoint.parse(value);
            } catch (IllegalArgumentException e) {
                throw new CommandLine.TypeConversionException(e.getMessage());
            }
        }
    }

    @CommandLine.Spec
    CommandLine.Model.CommandSpec spec;

    @Option(names = "--primary-in", required = true, converter = EndpointConverter.class, paramLabel = "SOCKET",
            description = "Frames the primary VM sent (from its filter-redirector).")
    Endpoint primaryIn;

    @Option(names = "--secondary-in", required = true, converter = EndpointConverter.class, paramLabel = "SOCKET",
            description = "Frames the secondary VM sent.")
    Endpoint secondaryIn;

    @Option(names = "--outdev", required = true, converter = EndpointConverter.class, paramLabel = "SOCKET",
            description = "Where released primary frames go.")
    Endpoint outdev;

    @Option(names = "--notify-dev", converter = EndpointConverter.class, paramLabel = "SOCKET",
            description = "Checkpoint notifications (Xen-style text protocol). Without it, mismatches are logged and output released.")
    Endpoint notifyDev;

    @Option(names = "--compare-timeout", defaultValue = "3000", paramLabel = "MS",
            description = "How long a frame may wait for its counterpart (default ${DEFAULT-VALUE}).")
    long compareTimeoutMs;

    @Option(names = "--expired-scan-cycle", defaultValue = "3000", paramLabel = "MS",
            description = "How often held frames are checked for age (default ${DEFAULT-VALUE}).")
    long expiredScanCycleMs;

    @Option(names = "--max-queue-size", defaultValue = "1024", paramLabel = "N",
            description = "Held frames per connection before a checkpoint (default ${DEFAULT-VALUE}).")
    int maxQueueSize;

    @Option(names = "--vnet-hdr", description = "Frames carry a vnet header length (QEMU vnet_hdr_support=on).")
    boolean vnetHdr;

    @Override
    public Integer call() throws Exception {
        CompareOptions opts;
        try {
            opts = new CompareOptions(primaryIn, secondaryIn, outdev, notifyDev, compareTimeoutMs, expiredScanCycleMs, maxQueueSize, vnetHdr);
        } catch (IllegalArgumentException e) {
            throw new CommandLine.ParameterException(spec.commandLine(), e.getMessage());
        }
        StandaloneCompare cmp = new StandaloneCompare(opts);
        try {
            cmp.start();
        } catch (Exception e) {
            cmp.close();
            spec.commandLine().getErr().println("colo compare: cannot open sockets: " + e.getMessage());
            return ExitCodes.OPERATION_FAILED;
        }
        Runtime.getRuntime().addShutdownHook(new Thread(cmp::close, "colo-compare-shutdown"));
        cmp.awaitClose();
        return ExitCodes.OK;
    }
}
