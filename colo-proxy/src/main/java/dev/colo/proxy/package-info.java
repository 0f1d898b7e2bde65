/**
 * The packet-comparison proxy: the VMs' virtual switch port. Pure comparison and TCP rewriting
 * logic stepped by events and {@code nowNs}, wrapped by thin Netty adapters.
 */
package dev.colo.proxy;
