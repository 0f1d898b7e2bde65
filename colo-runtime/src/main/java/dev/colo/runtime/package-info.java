/**
 * What every node component runs on: a {@link dev.colo.runtime.Clock}, serial
 * {@link dev.colo.runtime.Lane}s (one thread each in production, one virtual timeline in the
 * simulation) and a {@link dev.colo.runtime.LifeCycle} that refuses late events by state. A
 * {@link dev.colo.runtime.NodeRuntime} is the only place that owns threads; components take it as a
 * port, so the same classes run on real threads ({@link dev.colo.runtime.ThreadedRuntime}) and in a
 * seeded simulation of a whole pair.
 */
package dev.colo.runtime;
