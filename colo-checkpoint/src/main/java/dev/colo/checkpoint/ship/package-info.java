/**
 * Shipping a checkpoint's pages: batches with CRC32C, zero-page elision and compression, encoded on
 * the primary from the shadow and verified whole on the secondary before a single page is written.
 */
package dev.colo.checkpoint.ship;
