/**
 * The real hypervisor: libvirt through libvirt-java and a small JNA binding of our own for
 * {@code virDomainQemuMonitorCommandWithFiles}, QMP passthrough with timeouts, device-state save and
 * load over socketpairs, guest RAM mapping and the domain XML colo derives for protected VMs.
 */
package dev.colo.host.libvirt;
