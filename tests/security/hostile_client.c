/*
 * hostile_client.c - misbehaving clients for tests/security/hostile.sh.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * Usage:
 *   hostile_client halfhello HOST PORT
 *       connect, send the first half of a real TLS ClientHello, close
 *   hostile_client midrequest HOST PORT CA CERT KEY
 *       full TLS handshake with a client certificate, send the HTTP
 *       header and part of the declared body, close
 *   hostile_client idle HOST PORT N SECONDS
 *       open N TCP connections, send nothing, hold them SECONDS
 *   hostile_client slow HOST PORT N SECONDS
 *       open N TCP connections and send a TLS ClientHello on each, one
 *       byte per second per connection, for SECONDS (slowloris)
 *   hostile_client keepalive HOST PORT CA CERT KEY N SECONDS
 *       hold N authenticated keep-alive connections for SECONDS: each
 *       does the handshake with a client certificate, is answered one
 *       GetImportEnvelopeHeaders, then sits idle; one the server closes
 *       is opened again.  Prints opened=N answered=A reopened=R failed=F
 *   hostile_client spy PORT SECONDS
 *       listen on 127.0.0.1:PORT for SECONDS; print how many connections
 *       arrived ("spy connections=N"); SIGTERM ends it early
 *
 * idle and slow print one summary line:
 *   opened=N connected=C closed_by_peer=K first_close_ms=T
 * Exit status: 0 done, 2 usage or local error.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

static volatile sig_atomic_t stop;

static void
on_term(int sig)
{
    (void)sig;
    stop = 1;
}

static long
now_ms(void)
{
    struct timespec t;

    clock_gettime(CLOCK_MONOTONIC, &t);
    return (long)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

static int
tcp_connect(const char *host, int port, int nonblock)
{
    struct sockaddr_in sa;
    int fd;

    fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return -1;
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons((unsigned short)port);
    if (inet_pton(AF_INET, host, &sa.sin_addr) != 1) {
        close(fd);
        return -1;
    }
    if (nonblock)
        fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 &&
        !(nonblock && errno == EINPROGRESS)) {
        close(fd);
        return -1;
    }
    return fd;
}

/* The bytes of a real ClientHello, made with a memory BIO. */
static unsigned char *
client_hello(size_t *len)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    SSL *ssl;
    BIO *rb, *wb;
    unsigned char *out = NULL;
    char *p;
    long n;

    if (ctx == NULL)
        return NULL;
    ssl = SSL_new(ctx);
    rb = BIO_new(BIO_s_mem());
    wb = BIO_new(BIO_s_mem());
    if (ssl == NULL || rb == NULL || wb == NULL)
        goto out;
    SSL_set_bio(ssl, rb, wb);
    SSL_set_tlsext_host_name(ssl, "localhost");
    SSL_connect(ssl);                 /* wants to read: hello written */
    n = BIO_get_mem_data(wb, &p);
    if (n > 0 && (out = malloc((size_t)n)) != NULL) {
        memcpy(out, p, (size_t)n);
        *len = (size_t)n;
    }
out:
    if (ssl != NULL)
        SSL_free(ssl);              /* frees the BIOs */
    SSL_CTX_free(ctx);
    return out;
}

static int
halfhello(const char *host, int port)
{
    size_t len = 0;
    unsigned char *h = client_hello(&len);
    int fd;

    if (h == NULL || len < 4)
        return 2;
    fd = tcp_connect(host, port, 0);
    if (fd < 0) {
        perror("connect");
        return 2;
    }
    if (write(fd, h, len / 2) < 0)
        perror("write");
    close(fd);
    printf("sent %zu of %zu ClientHello bytes, closed\n", len / 2, len);
    free(h);
    return 0;
}

static int
midrequest(const char *host, int port, const char *ca, const char *cert,
           const char *key)
{
    static const char body[] =
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
        "<soap:Envelope xmlns:soap=\"http://schemas.xmlsoap.org/soap/envelope/\">"
        "<soap:Body><ns:GetImportEnvelopeHeaders xmlns:ns=\"http://ephyto.ippc.int/\"/>"
        "</soap:Body></soap:Envelope>\n";
    char req[1024];
    SSL_CTX *ctx;
    SSL *ssl;
    int fd, n, rc = 2;

    ctx = SSL_CTX_new(TLS_client_method());
    if (ctx == NULL || SSL_CTX_load_verify_locations(ctx, ca, NULL) != 1 ||
        SSL_CTX_use_certificate_chain_file(ctx, cert) != 1 ||
        SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1) {
        ERR_print_errors_fp(stderr);
        return 2;
    }
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    fd = tcp_connect(host, port, 0);
    if (fd < 0) {
        perror("connect");
        SSL_CTX_free(ctx);
        return 2;
    }
    ssl = SSL_new(ctx);
    SSL_set_fd(ssl, fd);
    if (SSL_connect(ssl) != 1) {
        ERR_print_errors_fp(stderr);
        goto out;
    }
    n = snprintf(req, sizeof(req),
                 "POST /hub/DeliveryService HTTP/1.1\r\nHost: %s:%d\r\n"
                 "Content-Type: text/xml; charset=utf-8\r\n"
                 "SOAPAction: \"http://ephyto.ippc.int/IDeliveryService/GetImportEnvelopeHeaders\"\r\n"
                 "Content-Length: %zu\r\n\r\n%.*s", host, port, sizeof(body) - 1,
                 (int)(sizeof(body) / 2), body);
    if (SSL_write(ssl, req, n) != n) {
        ERR_print_errors_fp(stderr);
        goto out;
    }
    printf("handshake done (%s), sent %d bytes of a %zu-byte body, closed\n",
           SSL_get_version(ssl), (int)(sizeof(body) / 2), sizeof(body) - 1);
    rc = 0;
out:
    SSL_free(ssl);
    close(fd);                        /* no close_notify: just drop it */
    SSL_CTX_free(ctx);
    return rc;
}

/* keepalive: one authenticated connection answered one request. */
struct kconn {
    int fd;
    SSL *ssl;
};

static int
kconn_open(SSL_CTX *ctx, const char *host, int port, struct kconn *k)
{
    static const char body[] =
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
        "<soap:Envelope xmlns:soap=\"http://schemas.xmlsoap.org/soap/envelope/\">"
        "<soap:Body><ns:GetImportEnvelopeHeaders xmlns:ns=\"http://ephyto.ippc.int/\"/>"
        "</soap:Body></soap:Envelope>\n";
    struct timeval tv = { 5, 0 };
    char req[1024], buf[16384];
    size_t got = 0;
    char *eoh;
    long clen;
    int n;

    k->ssl = NULL;
    k->fd = tcp_connect(host, port, 0);
    if (k->fd < 0)
        return -1;
    setsockopt(k->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    k->ssl = SSL_new(ctx);
    if (k->ssl == NULL || SSL_set_fd(k->ssl, k->fd) != 1 ||
        SSL_connect(k->ssl) != 1)
        return -1;
    n = snprintf(req, sizeof(req),
                 "POST /hub/DeliveryService HTTP/1.1\r\nHost: %s:%d\r\n"
                 "Content-Type: text/xml; charset=utf-8\r\n"
                 "SOAPAction: \"http://ephyto.ippc.int/IDeliveryService/GetImportEnvelopeHeaders\"\r\n"
                 "Content-Length: %zu\r\n\r\n%s", host, port, sizeof(body) - 1,
                 body);
    if (SSL_write(k->ssl, req, n) != n)
        return -1;
    /* the whole answer: header, then Content-Length bytes */
    for (;;) {
        n = SSL_read(k->ssl, buf + got, (int)(sizeof(buf) - 1 - got));
        if (n <= 0)
            return -1;
        got += (size_t)n;
        buf[got] = '\0';
        eoh = strstr(buf, "\r\n\r\n");
        if (eoh == NULL) {
            if (got == sizeof(buf) - 1)
                return -1;
            continue;
        }
        if (strncmp(buf, "HTTP/1.1 200", 12) != 0)
            return -1;
        {
            const char *cl = strcasestr(buf, "\r\nContent-Length:");

            if (cl == NULL || cl > eoh)
                return -1;
            clen = strtol(cl + 17, NULL, 10);
        }
        if ((long)(got - (size_t)(eoh + 4 - buf)) >= clen)
            return 0;
        if (got == sizeof(buf) - 1)
            return -1;
    }
}

static void
kconn_close(struct kconn *k)
{
    if (k->ssl != NULL)
        SSL_free(k->ssl);
    if (k->fd >= 0)
        close(k->fd);
    k->ssl = NULL;
    k->fd = -1;
}

static int
keepalive(const char *host, int port, const char *ca, const char *cert,
          const char *key, int n, int seconds)
{
    struct kconn *k = calloc((size_t)n, sizeof(*k));
    struct pollfd *pfd = calloc((size_t)n, sizeof(*pfd));
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    long opened = 0, answered = 0, reopened = 0, failed = 0;
    long end = now_ms() + (long)seconds * 1000;
    int i;

    if (k == NULL || pfd == NULL || ctx == NULL ||
        SSL_CTX_load_verify_locations(ctx, ca, NULL) != 1 ||
        SSL_CTX_use_certificate_chain_file(ctx, cert) != 1 ||
        SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1) {
        ERR_print_errors_fp(stderr);
        return 2;
    }
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    signal(SIGTERM, on_term);
    for (i = 0; i < n && !stop; i++) {
        opened++;
        if (kconn_open(ctx, host, port, &k[i]) == 0)
            answered++;
        else
            failed++;
    }
    while (!stop && now_ms() < end) {
        for (i = 0; i < n; i++) {
            pfd[i].fd = k[i].fd;
            pfd[i].events = POLLIN;
            pfd[i].revents = 0;
        }
        if (poll(pfd, (nfds_t)n, 200) <= 0)
            continue;
        /* readable while idle: the server closed it (or a failed one) */
        for (i = 0; i < n && !stop && now_ms() < end; i++)
            if (pfd[i].revents != 0 || k[i].fd < 0) {
                kconn_close(&k[i]);
                reopened++;
                if (kconn_open(ctx, host, port, &k[i]) == 0)
                    answered++;
                else
                    failed++;
            }
    }
    printf("opened=%ld answered=%ld reopened=%ld failed=%ld\n", opened,
           answered, reopened, failed);
    for (i = 0; i < n; i++)
        kconn_close(&k[i]);
    free(k);
    free(pfd);
    SSL_CTX_free(ctx);
    return 0;
}

/* idle / slow: N connections held SECONDS. */
static int
storm(int slow, const char *host, int port, int n, int seconds)
{
    struct rlimit rl;
    size_t hlen = 0;
    unsigned char *hello = NULL;
    int *fd, *closed, connected = 0, nclosed = 0, i;
    size_t *sent;
    long t0, first_close = -1, next_tick;

    rl.rlim_cur = rl.rlim_max = (rlim_t)n + 64;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < (rlim_t)n + 64) {
        rl.rlim_cur = (rlim_t)n + 64;
        if (rl.rlim_max < rl.rlim_cur)
            rl.rlim_max = rl.rlim_cur;
        if (setrlimit(RLIMIT_NOFILE, &rl) != 0) {
            perror("setrlimit");
            return 2;
        }
    }
    if (slow && (hello = client_hello(&hlen)) == NULL)
        return 2;
    fd = calloc((size_t)n, sizeof(*fd));
    closed = calloc((size_t)n, sizeof(*closed));
    sent = calloc((size_t)n, sizeof(*sent));
    if (fd == NULL || closed == NULL || sent == NULL)
        return 2;
    t0 = now_ms();
    for (i = 0; i < n; i++) {
        fd[i] = tcp_connect(host, port, 1);
        if (fd[i] < 0)
            closed[i] = 1;
    }
    /* wait (bounded) for the connects to finish */
    for (i = 0; i < n; i++) {
        struct pollfd p;
        int err = 0;
        socklen_t el = sizeof(err);

        if (fd[i] < 0)
            continue;
        p.fd = fd[i];
        p.events = POLLOUT;
        if (poll(&p, 1, 2000) == 1 &&
            getsockopt(fd[i], SOL_SOCKET, SO_ERROR, &err, &el) == 0 && err == 0)
            connected++;
    }
    next_tick = now_ms();
    while (now_ms() - t0 < (long)seconds * 1000) {
        long now = now_ms();

        for (i = 0; i < n; i++) {
            char b[256];
            ssize_t r;

            if (fd[i] < 0 || closed[i])
                continue;
            r = recv(fd[i], b, sizeof(b), MSG_DONTWAIT);
            if (r == 0 || (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK &&
                           errno != ENOTCONN)) {
                closed[i] = 1;
                nclosed++;
                if (first_close < 0)
                    first_close = now - t0;
                continue;
            }
            if (slow && now >= next_tick && sent[i] < hlen) {
                if (send(fd[i], hello + sent[i], 1, MSG_NOSIGNAL | MSG_DONTWAIT) == 1)
                    sent[i]++;
                else if (errno != EAGAIN && errno != EWOULDBLOCK) {
                    closed[i] = 1;
                    nclosed++;
                    if (first_close < 0)
                        first_close = now - t0;
                }
            }
        }
        if (slow && now >= next_tick)
            next_tick += 1000;
        usleep(50000);
    }
    for (i = 0; i < n; i++)
        if (fd[i] >= 0)
            close(fd[i]);
    printf("opened=%d connected=%d closed_by_peer=%d first_close_ms=%ld\n",
           n, connected, nclosed, first_close);
    free(fd);
    free(closed);
    free(sent);
    free(hello);
    return 0;
}

static int
spy(int port, int seconds)
{
    struct sockaddr_in sa;
    int s, one = 1, count = 0;
    long t0 = now_ms();

    s = socket(AF_INET, SOCK_STREAM, 0);
    if (s < 0)
        return 2;
    setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons((unsigned short)port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(s, (struct sockaddr *)&sa, sizeof(sa)) != 0 || listen(s, 16) != 0) {
        perror("spy: bind/listen");
        return 2;
    }
    printf("spy listening\n");
    fflush(stdout);
    signal(SIGTERM, on_term);
    signal(SIGINT, on_term);
    while (!stop && now_ms() - t0 < (long)seconds * 1000) {
        struct pollfd p = { s, POLLIN, 0 };

        if (poll(&p, 1, 200) == 1) {
            int c = accept(s, NULL, NULL);

            if (c >= 0) {
                count++;
                close(c);
            }
        }
    }
    printf("spy connections=%d\n", count);
    close(s);
    return 0;
}

static void
usage(void)
{
    fputs("usage: hostile_client halfhello HOST PORT\n"
          "       hostile_client midrequest HOST PORT CA CERT KEY\n"
          "       hostile_client idle|slow HOST PORT N SECONDS\n"
          "       hostile_client keepalive HOST PORT CA CERT KEY N SECONDS\n"
          "       hostile_client spy PORT SECONDS\n", stderr);
    exit(2);
}

int
main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    signal(SIGPIPE, SIG_IGN);
    if (argc < 2)
        usage();
    if (!strcmp(argv[1], "halfhello") && argc == 4)
        return halfhello(argv[2], atoi(argv[3]));
    if (!strcmp(argv[1], "midrequest") && argc == 7)
        return midrequest(argv[2], atoi(argv[3]), argv[4], argv[5], argv[6]);
    if ((!strcmp(argv[1], "idle") || !strcmp(argv[1], "slow")) && argc == 6) {
        int n = atoi(argv[4]), s = atoi(argv[5]);

        if (n < 1 || n > 100000 || s < 1 || s > 3600)
            usage();
        return storm(argv[1][0] == 's', argv[2], atoi(argv[3]), n, s);
    }
    if (!strcmp(argv[1], "keepalive") && argc == 9) {
        int n = atoi(argv[7]), s = atoi(argv[8]);

        if (n < 1 || n > 1000 || s < 1 || s > 3600)
            usage();
        return keepalive(argv[2], atoi(argv[3]), argv[4], argv[5], argv[6],
                         n, s);
    }
    if (!strcmp(argv[1], "spy") && argc == 4)
        return spy(atoi(argv[2]), atoi(argv[3]));
    usage();
    return 2;
}
