/**
 * {@code colo demo} and the one-machine lab it builds (client, host A and host B namespaces on one
 * bridge, a real daemon per host, the test guest), also used by the end-to-end tests and bench/run.
 */
package dev.colo.cli.demo;
