/**
 * Disk replication. On the primary, QEMU's own block layer mirrors each writable disk of the PVM
 * ({@code blockdev-mirror}, write-blocking) into an NBD export that the daemon serves itself
 * ({@link dev.colo.checkpoint.disk.NbdDecoder}, {@link dev.colo.checkpoint.disk.NbdExportHandler}):
 * a guest write completes only once it is in the {@link dev.colo.checkpoint.disk.DiskWriteLog},
 * which cuts the writes into epochs at each checkpoint's pause. On the secondary,
 * {@link dev.colo.checkpoint.disk.ReplicaDisk} applies a checkpoint's epochs to the base image while
 * the SVM is stopped; the SVM's own writes live in QEMU's replication overlays and never reach it.
 * The log and the replica are pure apart from their file; the Netty classes are thin.
 */
package dev.colo.checkpoint.disk;
