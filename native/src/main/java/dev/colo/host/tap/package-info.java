/** Tap devices through {@code /dev/net/tun}: the LAN side of the proxy. */
package dev.colo.host.tap;
