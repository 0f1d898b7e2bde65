package dev.colo.cli;

import java.io.PrintWriter;
import java.io.StringWriter;
import picocli.CommandLine;

/** One {@code colo} command run in-process through picocli, with its exit code and captured output. */
record ColoRun(int code, String out, String err) {
    static ColoRun of(String... args) {
        CommandLine cl = ColoCommand.commandLine();
        StringWriter out = new StringWriter();
        StringWriter err = new StringWriter();
        cl.setOut(new PrintWriter(out));
        cl.setErr(new PrintWriter(err));
        int code = cl.execute(args);
        return new ColoRun(code, out.toString(), err.toString());
    }

    /** Like {@link #of}, and prints the command and its output (integration tests show what they did). */
    static ColoRun shown(String... args) {
        ColoRun r = of(args);
        System.out.println("$ colo " + String.join(" ", args) + "  -> exit " + r.code() + "\n" + r.out() + r.err());
        return r;
    }
}
