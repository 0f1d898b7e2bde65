/*
 * colo-svc: the test guest's line service on TCP port 8, for the promise tests (one process, many
 * keep-alive connections, state in guest RAM like a real service's):
 *   APPEND <id>   -> "OK <id> <records so far>"      appends <id> to the records
 *   COUNT <id>    -> "N <times <id> was appended>"
 *   LOGIN         -> "TOKEN <16 random hex>"          a session token (random per VM: it diverges)
 *   CHECK <token> -> "VALID" or "UNKNOWN"
 *   RECORDS       -> every record, one per line, then "END"
 *   UDPLOG        -> every UDP request udp-seq applied (its log), then "END"
 * Anything else -> "ERR <what>". Built static by build-guest-image.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/random.h>
#include <unistd.h>

#define MAX_CLIENTS 256
#define MAX_RECORDS 200000
#define MAX_TOKENS 20000

static char *records[MAX_RECORDS];
static int nrecords;
static char tokens[MAX_TOKENS][17];
static int ntokens;

struct client { int fd; char buf[4096]; int len; };
static struct client clients[MAX_CLIENTS];

static void say(int fd, const char *s) {
    size_t n = strlen(s), off = 0;
    while (off < n) {
        ssize_t w = write(fd, s + off, n - off);
        if (w < 0) {
            if (errno == EINTR || errno == EAGAIN) continue;
            return;
        }
        off += (size_t)w;
    }
}

static void line(int fd, char *l) {
    char out[256];
    if (strncmp(l, "APPEND ", 7) == 0 && nrecords < MAX_RECORDS) {
        records[nrecords++] = strdup(l + 7);
        snprintf(out, sizeof out, "OK %s %d\n", l + 7, nrecords);
        say(fd, out);
    } else if (strncmp(l, "COUNT ", 6) == 0) {
        int c = 0;
        for (int i = 0; i < nrecords; i++) c += strcmp(records[i], l + 6) == 0;
        snprintf(out, sizeof out, "N %d\n", c);
        say(fd, out);
    } else if (strcmp(l, "LOGIN") == 0 && ntokens < MAX_TOKENS) {
        unsigned char r[8];
        if (getrandom(r, sizeof r, 0) != sizeof r) memset(r, 0, sizeof r);
        for (int i = 0; i < 8; i++) sprintf(tokens[ntokens] + 2 * i, "%02x", r[i]);
        snprintf(out, sizeof out, "TOKEN %s\n", tokens[ntokens++]);
        say(fd, out);
    } else if (strncmp(l, "CHECK ", 6) == 0) {
        int ok = 0;
        for (int i = 0; i < ntokens && !ok; i++) ok = strcmp(tokens[i], l + 6) == 0;
        say(fd, ok ? "VALID\n" : "UNKNOWN\n");
    } else if (strcmp(l, "RECORDS") == 0) {
        for (int i = 0; i < nrecords; i++) {
            say(fd, records[i]);
            say(fd, "\n");
        }
        say(fd, "END\n");
    } else if (strcmp(l, "UDPLOG") == 0) {
        FILE *f = fopen("/var/lib/colo/udp.log", "r");
        char b[512];
        while (f && fgets(b, sizeof b, f)) say(fd, b);
        if (f) fclose(f);
        say(fd, "END\n");
    } else {
        snprintf(out, sizeof out, "ERR %.200s\n", l);
        say(fd, out);
    }
}

int main(void) {
    /* Seed before listening, as a service that hands out secrets should: the first getrandom()
     * after boot blocks until the kernel's CRNG is ready, about 2 s on a freshly booted TCG guest
     * with no hardware RNG. Left to the first LOGIN, that wait stalled this single-threaded
     * service and every client's request with it. */
    unsigned char seed[1];
    while (getrandom(seed, sizeof seed, 0) != sizeof seed && errno == EINTR) {
    }
    int s = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons(8);
    a.sin_addr.s_addr = htonl(INADDR_ANY);
    setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (s < 0 || bind(s, (struct sockaddr *)&a, sizeof a) < 0 || listen(s, 64) < 0) {
        perror("colo-svc");
        return 1;
    }
    for (int i = 0; i < MAX_CLIENTS; i++) clients[i].fd = -1;
    for (;;) {
        fd_set r;
        FD_ZERO(&r);
        FD_SET(s, &r);
        int max = s;
        for (int i = 0; i < MAX_CLIENTS; i++) {
            if (clients[i].fd >= 0) {
                FD_SET(clients[i].fd, &r);
                if (clients[i].fd > max) max = clients[i].fd;
            }
        }
        if (select(max + 1, &r, NULL, NULL, NULL) < 0) continue;
        if (FD_ISSET(s, &r)) {
            int c = accept(s, NULL, NULL);
            int placed = 0;
            for (int i = 0; c >= 0 && i < MAX_CLIENTS && !placed; i++) {
                if (clients[i].fd < 0) {
                    clients[i].fd = c;
                    clients[i].len = 0;
                    placed = 1;
                }
            }
            if (c >= 0 && !placed) close(c);
        }
        for (int i = 0; i < MAX_CLIENTS; i++) {
            struct client *c = &clients[i];
            if (c->fd < 0 || !FD_ISSET(c->fd, &r)) continue;
            ssize_t n = read(c->fd, c->buf + c->len, sizeof c->buf - 1 - (size_t)c->len);
            if (n <= 0) {
                close(c->fd);
                c->fd = -1;
                continue;
            }
            c->len += (int)n;
            char *start = c->buf, *nl;
            while ((nl = memchr(start, '\n', (size_t)(c->buf + c->len - start))) != NULL) {
                *nl = 0;
                if (nl > start && nl[-1] == '\r') nl[-1] = 0;
                line(c->fd, start);
                start = nl + 1;
            }
            c->len = (int)(c->buf + c->len - start);
            memmove(c->buf, start, (size_t)c->len);
            if (c->len >= (int)sizeof c->buf - 1) c->len = 0; /* an over-long line is dropped */
        }
    }
}
