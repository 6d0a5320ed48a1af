/*
 * threaded: the "traditional threaded server" of bench/claims.sh. Plain
 * blocking sockets and one pthread per connection, the model the article
 * compares asyncio with. Minimal HTTP/1.1 keep-alive, no parsing beyond the
 * request line and the end of the head (request bodies are not read):
 *
 *   GET /get        200 {"ok":true}
 *   GET /delay/S    200 {"ok":true} after S seconds (a blocking nanosleep,
 *                   at most 10), as a thread-per-connection server would
 *                   block on a slow backend
 *   anything else   404 {"error":"not found"}
 *
 *   threaded -p PORT [-s STACK_KB] [-b BACKLOG]
 *
 *   -p PORT      listen on 127.0.0.1:PORT (required)
 *   -s STACK_KB  each connection thread's stack (default 64 KiB; glibc's
 *                default is 8 MiB of address space, of which only the pages
 *                touched count in RSS, so a small stack is fair and is what
 *                a tuned threaded server would set)
 *   -b BACKLOG   listen backlog (default 4096)
 *
 * A connection whose thread cannot be created is closed at once (counted on
 * stderr at exit). Linux only. Stops on SIGTERM or SIGINT.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define HEAD_MAX 4096

static const char ok_answer[] =
    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 12\r\n\r\n"
    "{\"ok\":true}\n";
static const char missing_answer[] =
    "HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\nContent-Length: 24\r\n\r\n"
    "{\"error\":\"not found\"}\n\n";

static int send_all(int fd, const char *p, size_t n) {
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Answer one request head (buf[0..len), ending in CRLF CRLF); 0 to go on,
 * -1 to close the connection. */
static int answer(int fd, const char *buf, size_t len) {
    char method[16], path[256];
    if (sscanf(buf, "%15s %255s", method, path) != 2)
        return -1;
    int close_after = memmem(buf, len, "\r\nConnection: close", 19) != NULL;
    const char *ans = missing_answer;
    size_t n = sizeof missing_answer - 1;
    if (strcmp(path, "/get") == 0) {
        ans = ok_answer;
        n = sizeof ok_answer - 1;
    } else if (strncmp(path, "/delay/", 7) == 0) {
        double s = atof(path + 7);
        if (s >= 0 && s <= 10) {
            struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
            while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
            }
            ans = ok_answer;
            n = sizeof ok_answer - 1;
        }
    }
    if (send_all(fd, ans, n) < 0)
        return -1;
    return close_after ? -1 : 0;
}

static void *serve(void *arg) {
    int fd = (int)(intptr_t)arg;
    char buf[HEAD_MAX];
    size_t len = 0;
    for (;;) {
        char *end;
        while ((end = memmem(buf, len, "\r\n\r\n", 4)) != NULL) {
            size_t head = (size_t)(end - buf) + 4;
            if (answer(fd, buf, head) < 0)
                goto out;
            memmove(buf, buf + head, len - head);
            len -= head;
        }
        if (len == sizeof buf)
            goto out; /* head too large */
        ssize_t r = recv(fd, buf + len, sizeof buf - len, 0);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            goto out;
        len += (size_t)r;
    }
out:
    close(fd);
    return NULL;
}

static volatile sig_atomic_t stop;
static void on_signal(int sig) { (void)sig; stop = 1; }

int main(int argc, char **argv) {
    int port = 0, backlog = 4096, opt;
    size_t stack_kb = 64;
    while ((opt = getopt(argc, argv, "p:s:b:")) != -1) {
        switch (opt) {
        case 'p': port = atoi(optarg); break;
        case 's': stack_kb = (size_t)atol(optarg); break;
        case 'b': backlog = atoi(optarg); break;
        default:
            fprintf(stderr, "usage: threaded -p PORT [-s STACK_KB] [-b BACKLOG]\n");
            return 2;
        }
    }
    if (port <= 0 || port > 65535 || stack_kb < 16) {
        fprintf(stderr, "usage: threaded -p PORT [-s STACK_KB >= 16] [-b BACKLOG]\n");
        return 2;
    }
    struct sigaction sa = {0};
    sa.sa_handler = on_signal; /* no SA_RESTART: accept() returns EINTR */
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);

    int ls = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (ls < 0 || bind(ls, (struct sockaddr *)&a, sizeof a) < 0 || listen(ls, backlog) < 0) {
        perror("threaded: listen");
        return 1;
    }
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    if (pthread_attr_setstacksize(&attr, stack_kb * 1024) != 0) {
        fprintf(stderr, "threaded: bad stack size %zu KiB\n", stack_kb);
        return 2;
    }
    unsigned long refused = 0;
    while (!stop) {
        int fd = accept4(ls, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            if (errno == EMFILE || errno == ENFILE) {
                usleep(10000);
                continue;
            }
            perror("threaded: accept");
            return 1;
        }
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        pthread_t t;
        if (pthread_create(&t, &attr, serve, (void *)(intptr_t)fd) != 0) {
            refused++;
            close(fd);
        }
    }
    if (refused)
        fprintf(stderr, "threaded: %lu connections closed: no thread could be created\n", refused);
    return 0;
}
