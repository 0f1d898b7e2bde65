package dev.colo.host.posix;

import com.sun.jna.LastErrorException;
import com.sun.jna.Library;
import com.sun.jna.Native;
import com.sun.jna.Pointer;

/** The handful of libc calls the JDK does not offer: raw fds, socketpairs, memfds, ioctl, poll. */
public interface Libc extends Library {
    Libc INSTANCE = Native.load("c", Libc.class);

    int AF_UNIX = 1;
    int SOCK_STREAM = 1;
    int SOCK_CLOEXEC = 0x80000;
    int O_WRONLY = 1;
    int O_RDWR = 2;
    int MFD_CLOEXEC = 1;
    int O_CLOEXEC = 0x80000;
    short POLLIN = 0x1;
    short POLLOUT = 0x4;
    int SHUT_WR = 1;
    int EINTR = 4;
    int EAGAIN = 11;

    int socketpair(int domain, int type, int protocol, int[] fds) throws LastErrorException;

    int close(int fd) throws LastErrorException;

    long read(int fd, Pointer buf, long count) throws LastErrorException;

    long write(int fd, Pointer buf, long count) throws LastErrorException;

    int open(String path, int flags) throws LastErrorException;

    int memfd_create(String name, int flags) throws LastErrorException;

    long pread(int fd, Pointer buf, long count, long offset) throws LastErrorException;

    long lseek(int fd, long offset, int whence) throws LastErrorException;

    int ioctl(int fd, long request, Pointer arg) throws LastErrorException;

    int poll(Pointer fds, int nfds, int timeoutMs) throws LastErrorException;

    int shutdown(int fd, int how) throws LastErrorException;

    String strerror(int errnum);

    int CLONE_NEWNET = 0x40000000;

    int setns(int fd, int nstype) throws LastErrorException;
}
