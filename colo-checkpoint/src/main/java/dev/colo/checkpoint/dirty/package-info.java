/**
 * Finding the PVM's dirty pages: the baseline compares guest RAM with the daemon's shadow of the
 * last checkpoint (vectorized, parallel), and soft-dirty tracking is detected where the kernel has it.
 */
package dev.colo.checkpoint.dirty;
