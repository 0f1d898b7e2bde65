package dev.colo.cli;

/** The exit codes of every colo command (documented in docs/operations.md). */
public final class ExitCodes {
    public static final int OK = 0;
    /** The operation ran and failed. Also what picocli returns for an exception in a command. */
    public static final int FAILED = 1;
    /** Bad command line (picocli's usage error code). */
    public static final int USAGE = 2;
    /** The local daemon could not be reached. */
    public static final int DAEMON_UNREACHABLE = 3;
    /** A resource the command needs could not be opened (socket, file). */
    public static final int OPERATION_FAILED = 4;

    private ExitCodes() {}
}
