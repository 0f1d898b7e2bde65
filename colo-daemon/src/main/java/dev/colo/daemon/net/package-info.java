/** The daemon's LAN side: tap devices pumped into the path cores' event loops. */
package dev.colo.daemon.net;
