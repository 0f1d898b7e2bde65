/** Thin Netty adapters that connect the pure path cores to QEMU's socket netdevs. */
package dev.colo.proxy.netty;
