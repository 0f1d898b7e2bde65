/**
 * The {@code colo} command line (picocli): the operator's verbs, which talk to the local daemon's
 * control socket, plus the standalone tools ({@code compare}, {@code demo}). {@link
 * dev.colo.cli.ColoCommand} is the launcher's entry point.
 */
package dev.colo.cli;
