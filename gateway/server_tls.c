/*
 * server_tls.c - TLS listener, bounded worker pool, partner identification,
 * and the per-connection serve loop.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * The main thread accepts and runs every TLS handshake itself,
 * non-blocking, with a deadline, in one poll() loop: a slow, silent or
 * unauthenticated peer costs a file descriptor and an SSL object, never a
 * worker, and when too many handshakes are pending the oldest is dropped
 * so that new peers still get in.  Only a finished handshake whose client
 * certificate's public key is a configured partner's becomes a gSOAP
 * context in the bounded hand-over queue; worker threads take one
 * connection at a time and serve requests on it (keep-alive) until the
 * peer closes, a timeout hits or we stop.  Each worker owns one store
 * handle.
 */
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "soapH.h"
#include "DeliveryServiceSoapBinding.nsmap"
#include "log.h"
#include "server.h"

#define MAX_KEEP_ALIVE 1000      /* requests per connection */
#define MAX_OCCURS     10000     /* elements in one repeated list */

/* The configuration the TLS verify callback consults (read-only). */
static const struct config *tls_cfg;

/* ---- partner identification ------------------------------------------------ */

static int
spki_sha256(X509 *cert, unsigned char out[32])
{
    unsigned char *der = NULL;
    unsigned int n = 0;
    int len, rc = -1;

    len = i2d_X509_PUBKEY(X509_get_X509_PUBKEY(cert), &der);
    if (len <= 0)
        goto out;
    if (EVP_Digest(der, (size_t)len, out, &n, EVP_sha256(), NULL) != 1 ||
        n != 32)
        goto out;
    rc = 0;
out:
    OPENSSL_free(der);
    return rc;
}

static const struct partner *
partner_of(X509 *cert)
{
    unsigned char sha[32];

    if (cert == NULL || spki_sha256(cert, sha) != 0)
        return NULL;
    return config_partner_by_spki(tls_cfg, sha);
}

/* Chain checks are OpenSSL's; on top, the leaf must be a known partner,
 * so that an unknown certificate fails the handshake itself. */
static int
verify_cb(int ok, X509_STORE_CTX *store)
{
    if (!ok)
        return 0;
    if (X509_STORE_CTX_get_error_depth(store) != 0)
        return 1;
    if (partner_of(X509_STORE_CTX_get_current_cert(store)) == NULL) {
        X509_STORE_CTX_set_error(store, X509_V_ERR_CERT_REJECTED);
        return 0;
    }
    return 1;
}

/* ---- TLS context ----------------------------------------------------------- */

static int
tls_setup(struct soap *soap, const struct config *cfg, char *err, size_t errlen)
{
    SSL_CTX *ctx;
    STACK_OF(X509_NAME) *cas;
    unsigned long e;

    soap->fsslverify = verify_cb;
    if (soap_ssl_server_context(soap,
            SOAP_SSL_REQUIRE_CLIENT_AUTHENTICATION | SOAP_SSL_NO_DEFAULT_CA_PATH |
            SOAP_TLSv1_2 | SOAP_TLSv1_3,
            NULL, NULL, cfg->tls_ca, NULL, NULL, NULL, "ecertd") != SOAP_OK) {
        snprintf(err, errlen, "TLS context: %s", soap_fault_string(soap) ?
                 soap_fault_string(soap) : "failed");
        return -1;
    }
    ctx = soap->ctx;
    ERR_clear_error();
    if (SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1 ||
        SSL_CTX_use_certificate_chain_file(ctx, cfg->tls_cert) != 1 ||
        SSL_CTX_use_PrivateKey_file(ctx, cfg->tls_key, SSL_FILETYPE_PEM) != 1 ||
        SSL_CTX_check_private_key(ctx) != 1 ||
        SSL_CTX_load_verify_locations(ctx, cfg->tls_ca, NULL) != 1) {
        e = ERR_get_error();
        snprintf(err, errlen, "TLS: %s (certificate %s, key %s, CA %s)",
                 e ? ERR_reason_error_string(e) : "setup failed",
                 cfg->tls_cert, cfg->tls_key, cfg->tls_ca);
        return -1;
    }
    cas = SSL_load_client_CA_file(cfg->tls_ca);
    if (cas == NULL) {
        snprintf(err, errlen, "TLS: no CA certificate in %s", cfg->tls_ca);
        return -1;
    }
    SSL_CTX_set_client_CA_list(ctx, cas);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT,
                       verify_cb);
    SSL_CTX_set_verify_depth(ctx, 8);
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION |
                        SSL_OP_CIPHER_SERVER_PREFERENCE);
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);   /* idle peers: small */
    /* One read(2) per TLS record, not two (header, then body). */
    SSL_CTX_set_read_ahead(ctx, 1);
    return 0;
}

static struct soap *
master_new(const struct config *cfg)
{
    struct soap *soap;

    soap = soap_new1(SOAP_C_UTFSTRING | SOAP_XML_STRICT | SOAP_IO_KEEPALIVE);
    if (soap == NULL)
        return NULL;
    soap_set_namespaces(soap, namespaces);
    soap->bind_flags = SO_REUSEADDR;
    soap->recv_timeout = cfg->recv_timeout;
    soap->send_timeout = cfg->send_timeout;
    soap->transfer_timeout = cfg->recv_timeout * 4;
    soap->accept_timeout = 1;                 /* to notice a stop */
    soap->recv_maxlength = (ULONG64)cfg->max_request_bytes;
    soap->maxlevel = (unsigned int)cfg->xml_depth;
    soap->maxoccurs = MAX_OCCURS;
    soap->max_keep_alive = MAX_KEEP_ALIVE;
    return soap;
}

int
server_tls_check(const struct config *cfg, char *err, size_t errlen)
{
    struct soap *soap;
    int rc;

    tls_cfg = cfg;
    soap = master_new(cfg);
    if (soap == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    rc = tls_setup(soap, cfg, err, errlen);
    soap_destroy(soap);
    soap_end(soap);
    soap_free(soap);
    return rc;
}

/* ---- connections and the pool ------------------------------------------------
 * A connection is small: socket, TLS session, partner.  The gSOAP context
 * (some 160 KB) belongs to the worker serving it.  Between requests an
 * idle connection is parked with the reactor (the acceptor's poll loop),
 * which hands it to a worker again once it is readable: idle partners
 * cost no worker and a few kilobytes each. */

struct conn {
    int fd;
    SSL *ssl;
    const struct partner *pt;
    int port;
    int keep_alive;            /* gSOAP's count of requests left */
    long long idle_until;      /* parked: closed after this (ms, monotonic) */
    char host[64];
};

struct pool {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct conn **ready;       /* readable: waiting for a worker (ring) */
    size_t cap, head, n;
    struct conn **parked;      /* idle, from workers: for the reactor */
    size_t nparked;
    size_t live;               /* connections open after their handshake */
    int closing;
    int wake_fd;               /* eventfd: a connection was parked */
};

/* Close without waiting for the peer's close_notify (gSOAP would wait up
 * to 5 s, on a worker). */
static void
tls_close(int fd, SSL *ssl)
{
    if (ssl != NULL) {
        ERR_clear_error();
        (void)SSL_shutdown(ssl);
        SSL_free(ssl);
    }
    if (fd >= 0)
        close(fd);
}

static void
conn_close(struct pool *p, struct conn *c)
{
    tls_close(c->fd, c->ssl);
    free(c);
    pthread_mutex_lock(&p->mu);
    p->live--;
    pthread_mutex_unlock(&p->mu);
}

/* gSOAP's close hook on the workers' contexts. */
static int
soap_tls_close(struct soap *soap)
{
    tls_close(soap_valid_socket(soap->socket) ? soap->socket : -1, soap->ssl);
    soap->ssl = NULL;
    soap->socket = SOAP_INVALID_SOCKET;
    return SOAP_OK;
}

/* Readable connection c goes to a worker (cannot overflow: the ring holds
 * every live connection). */
static void
pool_ready(struct pool *p, struct conn *c)
{
    pthread_mutex_lock(&p->mu);
    p->ready[(p->head + p->n) % p->cap] = c;
    p->n++;
    pthread_cond_signal(&p->cv);
    pthread_mutex_unlock(&p->mu);
}

static struct conn *
pool_take(struct pool *p)
{
    struct conn *c = NULL;

    pthread_mutex_lock(&p->mu);
    while (p->n == 0 && !p->closing)
        pthread_cond_wait(&p->cv, &p->mu);
    if (p->n > 0) {
        c = p->ready[p->head];
        p->head = (p->head + 1) % p->cap;
        p->n--;
    }
    pthread_mutex_unlock(&p->mu);
    return c;
}

/* A worker gives idle connection c back to the reactor. */
static void
pool_park(struct pool *p, struct conn *c)
{
    uint64_t one = 1;

    pthread_mutex_lock(&p->mu);
    p->parked[p->nparked++] = c;
    pthread_mutex_unlock(&p->mu);
    if (write(p->wake_fd, &one, sizeof(one)) < 0 && errno != EAGAIN)
        log_warn("reactor wake-up: %s", strerror(errno));
}

/* ---- serving one connection ------------------------------------------------- */

struct worker {
    pthread_t tid;
    const struct gateway *gw;
    struct pool *pool;
    struct queue *q;
    struct soap *soap;         /* this worker's gSOAP context */
    volatile sig_atomic_t *stop;
};

static int
others_waiting(const struct request *r)
{
    struct pool *p = r->pool;
    int n;

    pthread_mutex_lock(&p->mu);
    n = p->n > 0;
    pthread_mutex_unlock(&p->mu);
    return n;
}

static void
connection(struct worker *w, struct conn *c)
{
    struct soap *soap = w->soap;
    struct request r;
    int keep;

    memset(&r, 0, sizeof(r));
    r.gw = w->gw;
    r.q = w->q;
    r.partner = c->pt;
    r.others_waiting = others_waiting;
    r.pool = w->pool;
    soap->user = &r;
    soap->socket = c->fd;
    soap->ssl = c->ssl;
    soap->imode |= SOAP_ENC_SSL;
    soap->omode |= SOAP_ENC_SSL;
    soap->port = c->port;
    snprintf(soap->host, sizeof(soap->host), "%s", c->host);
    soap->keep_alive = c->keep_alive;
    soap->bufidx = soap->buflen = 0;
    soap->error = SOAP_OK;
    soap->errnum = 0;
    keep = server_serve(soap, &r);
    c->keep_alive = soap->keep_alive;
    soap->user = NULL;
    soap_destroy(soap);
    soap_end(soap);
    if (!soap_valid_socket(soap->socket)) {     /* closed by gSOAP */
        c->fd = -1;
        c->ssl = NULL;
        keep = 0;
    }
    soap->socket = SOAP_INVALID_SOCKET;
    soap->ssl = NULL;
    if (keep && c->keep_alive > 0 && !*w->stop)
        pool_park(w->pool, c);
    else
        conn_close(w->pool, c);
}

static void *
worker_main(void *arg)
{
    struct worker *w = arg;
    struct conn *c;

    while ((c = pool_take(w->pool)) != NULL)
        connection(w, c);
    return NULL;
}

/* ---- the reactor --------------------------------------------------------------
 * One thread polls the listener, the TLS handshakes in progress (which
 * never take a worker, so floods and slow peers cannot starve partners)
 * and the parked idle connections. */

#define PENDING_MAX   512      /* handshakes in progress (keeps every
                                  descriptor below FD_SETSIZE for gSOAP) */
#define ACCEPT_BURST  64       /* accepts per loop turn */
#define NOTE_WINDOW   10000    /* ms: at most NOTE_MAX log lines per window */
#define NOTE_MAX      100

struct pending {
    int fd;
    SSL *ssl;
    long long deadline;        /* ms, monotonic */
    unsigned long long seq;    /* arrival order */
    short events;
    int port;
    char host[64];
};

struct acceptor {
    struct pool *pool;
    SSL_CTX *ctx;
    struct pending p[PENDING_MAX];
    size_t n;
    struct conn **idle;        /* parked connections this thread polls */
    size_t nidle, maxconn;
    struct pollfd *pfd;        /* 2 + PENDING_MAX + maxconn */
    unsigned long long seq;
    long long handshake_ms, idle_ms;
    long long note_window;
    int noted;
    long suppressed;
};

static long long
mono_ms(void)
{
    struct timespec t;

    clock_gettime(CLOCK_MONOTONIC, &t);
    return (long long)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

/* Warnings about unauthenticated peers, rate-limited: a flood of them
 * must not flood the log. */
static void
acceptor_note(struct acceptor *a, const char *host, int port, const char *why)
{
    long long now = mono_ms();

    if (now - a->note_window >= NOTE_WINDOW) {
        if (a->suppressed > 0)
            log_warn("tls: %ld more connection problems not logged in the "
                     "last %d s", a->suppressed, NOTE_WINDOW / 1000);
        a->note_window = now;
        a->noted = 0;
        a->suppressed = 0;
    }
    if (a->noted >= NOTE_MAX) {
        a->suppressed++;
        return;
    }
    a->noted++;
    log_warn("tls: %s:%d: %s", host, port, why);
}

static void
pending_drop(struct acceptor *a, size_t i, const char *why)
{
    struct pending *p = &a->p[i];

    if (why != NULL)
        acceptor_note(a, p->host, p->port, why);
    SSL_free(p->ssl);
    close(p->fd);
    a->p[i] = a->p[--a->n];
}

static void
pending_add(struct acceptor *a, int fd, const struct sockaddr_storage *ss,
            socklen_t sslen)
{
    struct pending *p;
    char serv[16];
    size_t i, oldest = 0;
    int one = 1;

    if (a->n == PENDING_MAX) {
        for (i = 1; i < a->n; i++)
            if (a->p[i].seq < a->p[oldest].seq)
                oldest = i;
        pending_drop(a, oldest, "dropped: too many TLS handshakes in progress");
    }
    p = &a->p[a->n];
    memset(p, 0, sizeof(*p));
    p->ssl = SSL_new(a->ctx);
    if (p->ssl == NULL || SSL_set_fd(p->ssl, fd) != 1) {
        SSL_free(p->ssl);
        close(fd);
        log_warn("tls: out of memory for a new connection");
        return;
    }
    SSL_set_accept_state(p->ssl);
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (getnameinfo((const struct sockaddr *)ss, sslen, p->host,
                    sizeof(p->host), serv, sizeof(serv),
                    NI_NUMERICHOST | NI_NUMERICSERV) != 0)
        snprintf(p->host, sizeof(p->host), "?");
    else
        p->port = atoi(serv);
    p->fd = fd;
    p->deadline = mono_ms() + a->handshake_ms;
    p->seq = a->seq++;
    p->events = POLLIN;
    a->n++;
}

static void
idle_add(struct acceptor *a, struct conn *c, long long now)
{
    c->idle_until = now + a->idle_ms;
    a->idle[a->nidle++] = c;
}

/* The handshake is done: a known partner's connection waits for its
 * first request, parked (or goes to a worker at once when TLS already
 * holds request bytes). */
static void
pending_done(struct acceptor *a, size_t i)
{
    struct pending *p = &a->p[i];
    struct pool *pl = a->pool;
    struct conn *c;
    X509 *cert;
    const struct partner *pt;
    int full;

    cert = SSL_get1_peer_certificate(p->ssl);
    pt = partner_of(cert);
    X509_free(cert);
    if (pt == NULL || SSL_get_verify_result(p->ssl) != X509_V_OK) {
        pending_drop(a, i, "no known client certificate");
        return;
    }
    c = calloc(1, sizeof(*c));
    if (c == NULL) {
        pending_drop(a, i, "out of memory");
        return;
    }
    pthread_mutex_lock(&pl->mu);
    full = pl->live >= a->maxconn;
    if (!full)
        pl->live++;
    pthread_mutex_unlock(&pl->mu);
    if (full) {
        log_warn("too many connections: refusing partner %s from %s",
                 pt->id, p->host);
        free(c);
        pending_drop(a, i, NULL);
        return;
    }
    /* The socket stays non-blocking: gSOAP waits with select() itself
     * when a TLS read or write would block. */
    c->fd = p->fd;
    c->ssl = p->ssl;
    c->pt = pt;
    c->port = p->port;
    c->keep_alive = MAX_KEEP_ALIVE + 1;
    snprintf(c->host, sizeof(c->host), "%s", p->host);
    a->p[i] = a->p[--a->n];             /* c owns fd and ssl now */
    if (SSL_has_pending(c->ssl))
        pool_ready(pl, c);
    else
        idle_add(a, c, mono_ms());
}

/* One step of handshake i after poll() said its socket is ready. */
static void
pending_step(struct acceptor *a, size_t i)
{
    struct pending *p = &a->p[i];
    unsigned long e;
    char why[160];
    int r;

    ERR_clear_error();
    r = SSL_do_handshake(p->ssl);
    if (r == 1) {
        pending_done(a, i);
        return;
    }
    switch (SSL_get_error(p->ssl, r)) {
    case SSL_ERROR_WANT_READ:
        p->events = POLLIN;
        return;
    case SSL_ERROR_WANT_WRITE:
        p->events = POLLOUT;
        return;
    default:
        e = ERR_peek_error();
        if (SSL_get_verify_result(p->ssl) != X509_V_OK)
            snprintf(why, sizeof(why), "handshake failed: certificate: %s",
                     X509_verify_cert_error_string(
                         SSL_get_verify_result(p->ssl)));
        else
            snprintf(why, sizeof(why), "handshake failed: %s",
                     e != 0 ? ERR_reason_error_string(e) : "connection closed");
        pending_drop(a, i, why);
        return;
    }
}

/* Connections parked by workers join the poll set. */
static void
take_parked(struct acceptor *a)
{
    struct pool *pl = a->pool;
    uint64_t v;
    long long now = mono_ms();
    size_t i;

    if (read(pl->wake_fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
        log_warn("reactor wake-up: %s", strerror(errno));
    pthread_mutex_lock(&pl->mu);
    for (i = 0; i < pl->nparked; i++)
        idle_add(a, pl->parked[i], now);
    pl->nparked = 0;
    pthread_mutex_unlock(&pl->mu);
}

static void
accept_burst(struct acceptor *a, int lfd)
{
    int k;

    for (k = 0; k < ACCEPT_BURST; k++) {
        struct sockaddr_storage ss;
        socklen_t sslen = sizeof(ss);
        int fd = accept4(lfd, (struct sockaddr *)&ss, &sslen,
                         SOCK_NONBLOCK | SOCK_CLOEXEC);

        if (fd < 0) {
            if (errno == EMFILE || errno == ENFILE) {
                /* out of descriptors: make room by dropping the
                 * oldest handshake */
                if (a->n > 0) {
                    size_t j, oldest = 0;

                    for (j = 1; j < a->n; j++)
                        if (a->p[j].seq < a->p[oldest].seq)
                            oldest = j;
                    pending_drop(a, oldest, "dropped: out of file "
                                 "descriptors");
                } else {
                    usleep(100000);
                }
            }
            break;          /* EAGAIN: no more waiting */
        }
        if (fd >= FD_SETSIZE - 16) {   /* gSOAP select()s on it */
            close(fd);
            acceptor_note(a, "-", 0, "refused: descriptor number too high");
            continue;
        }
        pending_add(a, fd, &ss, sslen);
    }
}

static void
acceptor_run(struct acceptor *a, int lfd, volatile sig_atomic_t *stop)
{
    struct pollfd *pfd = a->pfd;
    size_t i, n, m;
    int quiet = 0;

    while (!*stop) {
        long long now = mono_ms();

        for (i = a->n; i-- > 0;)
            if (now >= a->p[i].deadline)
                pending_drop(a, i, "handshake timed out");
        for (i = a->nidle; i-- > 0;)
            if (now >= a->idle[i]->idle_until) {
                conn_close(a->pool, a->idle[i]);
                a->idle[i] = a->idle[--a->nidle];
            }
        pfd[0].fd = lfd;
        pfd[0].events = POLLIN;
        pfd[1].fd = a->pool->wake_fd;
        pfd[1].events = POLLIN;
        n = a->n;
        m = a->nidle;
        for (i = 0; i < n; i++) {
            pfd[2 + i].fd = a->p[i].fd;
            pfd[2 + i].events = a->p[i].events;
        }
        for (i = 0; i < m; i++) {
            pfd[2 + n + i].fd = a->idle[i]->fd;
            pfd[2 + n + i].events = POLLIN;
        }
        for (i = 0; i < 2 + n + m; i++)
            pfd[i].revents = 0;
        if (poll(pfd, 2 + n + m, 250) <= 0) {
            /* A quiet moment after a burst of connections: give the
             * memory their TLS state took back to the system. */
            if (quiet++ == 0)
                malloc_trim(0);
            continue;           /* timeout, or a signal: look at stop */
        }
        quiet = 0;
        /* Backwards: a removal moves the last entry (already seen) into i. */
        for (i = m; i-- > 0;)
            if (pfd[2 + n + i].revents != 0) {
                struct conn *c = a->idle[i];

                a->idle[i] = a->idle[--a->nidle];
                pool_ready(a->pool, c);
            }
        for (i = n; i-- > 0;)
            if (pfd[2 + i].revents != 0)
                pending_step(a, i);
        if (pfd[1].revents & POLLIN)
            take_parked(a);
        if (pfd[0].revents & POLLIN)
            accept_burst(a, lfd);
    }
    while (a->n > 0)
        pending_drop(a, a->n - 1, NULL);
    while (a->nidle > 0)
        conn_close(a->pool, a->idle[--a->nidle]);
}

/* ---- the listener ----------------------------------------------------------- */

int
server_run(const struct gateway *gw, volatile sig_atomic_t *stop)
{
    const struct config *cfg = gw->cfg;
    static struct acceptor a;              /* large: not on the stack */
    struct pool pl;
    struct worker *w = NULL;
    struct soap *master = NULL;
    int i, started = 0, rc = 1;
    char err[512];

    tls_cfg = cfg;
    memset(&pl, 0, sizeof(pl));
    memset(&a, 0, sizeof(a));
    pthread_mutex_init(&pl.mu, NULL);
    pthread_cond_init(&pl.cv, NULL);
    pl.cap = (size_t)cfg->max_connections;
    pl.ready = calloc(pl.cap, sizeof(*pl.ready));
    pl.parked = calloc(pl.cap, sizeof(*pl.parked));
    pl.wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    a.idle = calloc(pl.cap, sizeof(*a.idle));
    a.pfd = calloc(2 + PENDING_MAX + pl.cap, sizeof(*a.pfd));
    w = calloc((size_t)cfg->workers, sizeof(*w));
    master = master_new(cfg);
    if (pl.ready == NULL || pl.parked == NULL || a.idle == NULL ||
        a.pfd == NULL || w == NULL || master == NULL) {
        log_error("out of memory");
        goto out;
    }
    if (pl.wake_fd < 0) {
        log_error("eventfd: %s", strerror(errno));
        goto out;
    }
    if (tls_setup(master, cfg, err, sizeof(err)) != 0) {
        log_error("%s", err);
        goto out;
    }
    server_serve_init(master, stop);        /* before threads */
    for (i = 0; i < cfg->workers; i++) {
        w[i].gw = gw;
        w[i].pool = &pl;
        w[i].stop = stop;
        if (queue_open(&w[i].q, cfg->store, 0, err, sizeof(err)) != Q_OK) {
            log_error("store %s: %s", cfg->store, err);
            goto out;
        }
        /* Benchmarks only: measure what fsync costs. */
        if (getenv("ECERTD_BENCH_NO_FSYNC") != NULL)
            queue_set_sync(w[i].q, 0);
    }
    if (getenv("ECERTD_BENCH_NO_FSYNC") != NULL)
        log_warn("ECERTD_BENCH_NO_FSYNC is set: hand-ins are NOT durable "
                 "(benchmark mode)");
    if (!soap_valid_socket(soap_bind(master, cfg->listen_addr,
                                     cfg->listen_port, 128))) {
        char buf[256];

        server_fault_line(master, buf, sizeof(buf));
        log_error("cannot listen on %s:%d: %s", cfg->listen_addr,
                  cfg->listen_port, buf);
        goto out;
    }
    /* The workers' contexts: new ones with the master's settings (not
     * copies: a copy writes all of gSOAP's 160 KB, a new context only
     * what it uses) and no TLS context of their own, as the reactor does
     * the handshakes; connections are lent to them. */
    for (i = 0; i < cfg->workers; i++) {
        w[i].soap = master_new(cfg);
        if (w[i].soap == NULL) {
            log_error("out of memory");
            goto out;
        }
        w[i].soap->fclose = soap_tls_close;
        /* No select() before each answer to ask whether the peer is
         * still there: the write says so. */
        w[i].soap->fpoll = NULL;
        /* Serialize an answer once, into memory, and send it with its
         * length (not twice: once to count, once to send). */
        w[i].soap->omode = (w[i].soap->omode & ~SOAP_IO) | SOAP_IO_STORE;
        w[i].soap->socket = SOAP_INVALID_SOCKET;
        w[i].soap->ssl = NULL;
    }
    for (started = 0; started < cfg->workers; started++)
        if (pthread_create(&w[started].tid, NULL, worker_main, &w[started]) != 0) {
            log_error("cannot start worker thread: %s", strerror(errno));
            *stop = 1;
            break;
        }
    log_info("listening on %s:%d (TLS 1.2+, client certificates required), "
             "%d workers, %zu partners, store %s", cfg->listen_addr,
             cfg->listen_port, cfg->workers, cfg->npartners, cfg->store);
    rc = 0;
    {
        int fl = fcntl(master->master, F_GETFL);

        if (fl == -1 || fcntl(master->master, F_SETFL, fl | O_NONBLOCK) == -1) {
            log_error("listener: %s", strerror(errno));
            *stop = 1;
        }
        a.pool = &pl;
        a.ctx = master->ctx;
        a.maxconn = pl.cap;
        a.handshake_ms = (long long)(cfg->recv_timeout < 10 ?
                                     cfg->recv_timeout : 10) * 1000;
        a.idle_ms = (long long)cfg->idle_timeout * 1000;
        a.note_window = mono_ms();
        acceptor_run(&a, master->master, stop);
    }
    log_info("stopping: finishing requests in flight");
out:
    pthread_mutex_lock(&pl.mu);
    pl.closing = 1;
    pthread_cond_broadcast(&pl.cv);
    pthread_mutex_unlock(&pl.mu);
    for (i = 0; i < started; i++)
        pthread_join(w[i].tid, NULL);
    /* what workers parked on their way out */
    for (; pl.nparked > 0; pl.nparked--)
        conn_close(&pl, pl.parked[pl.nparked - 1]);
    for (i = 0; w != NULL && i < cfg->workers; i++) {
        if (w[i].q != NULL)
            queue_close(w[i].q);
        if (w[i].soap != NULL) {
            soap_destroy(w[i].soap);
            soap_end(w[i].soap);
            soap_free(w[i].soap);
        }
    }
    if (master != NULL) {
        soap_destroy(master);
        soap_end(master);
        soap_free(master);
    }
    if (pl.wake_fd >= 0)
        close(pl.wake_fd);
    free(w);
    free(pl.ready);
    free(pl.parked);
    free(a.idle);
    free(a.pfd);
    pthread_mutex_destroy(&pl.mu);
    pthread_cond_destroy(&pl.cv);
    if (rc == 0)
        log_info("stopped");
    return rc;
}
