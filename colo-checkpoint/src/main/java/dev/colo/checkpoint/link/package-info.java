/**
 * The replication link between the two daemons of a pair: Netty over TCP with mutual TLS (each side
 * presents a certificate signed by the pair's CA), 4-byte length framing with a maximum size, the
 * protobuf {@code Envelope}, and a version check on the first message.
 */
package dev.colo.checkpoint.link;
