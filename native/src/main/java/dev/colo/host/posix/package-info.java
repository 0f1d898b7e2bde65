/** Raw POSIX calls through JNA that the JDK lacks: fds, socketpairs, poll, ioctl. */
package dev.colo.host.posix;
