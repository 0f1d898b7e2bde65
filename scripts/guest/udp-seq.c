/*
 * udp-seq: the test guest's UDP request/response service (busybox has no UDP server).
 * Listens on UDP port 9 and answers each datagram with "n=<requests so far> <payload>", so the
 * answer depends on guest state like a real service's would. Every payload it applied is appended
 * to /var/lib/colo/udp.log (guest RAM), which colo-svc's UDPLOG shows: the UDP exactly-once test
 * reads it. Built static by build-guest-image.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

int main(void) {
    int s = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons(9);
    a.sin_addr.s_addr = htonl(INADDR_ANY);
    if (s < 0 || bind(s, (struct sockaddr *)&a, sizeof a) < 0) {
        perror("udp-seq");
        return 1;
    }
    unsigned long n = 0;
    FILE *log = fopen("/var/lib/colo/udp.log", "a");
    char in[1400], out[1500];
    for (;;) {
        struct sockaddr_in from;
        socklen_t fl = sizeof from;
        ssize_t r = recvfrom(s, in, sizeof in - 1, 0, (struct sockaddr *)&from, &fl);
        if (r < 0) {
            continue;
        }
        in[r] = 0;
        if (log) {
            fprintf(log, "%s\n", in);
            fflush(log);
        }
        int w = snprintf(out, sizeof out, "n=%lu %s", ++n, in);
        sendto(s, out, (size_t)(w < (int)sizeof out ? w : (int)sizeof out - 1), 0, (struct sockaddr *)&from, fl);
    }
}
