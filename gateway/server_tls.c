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
#include <sys/socket.h>
#include <stdarg.h>
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

/* ---- hand-over queue ------------------------------------------------------- */

struct handover {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct soap **slot;
    size_t cap, head, n;
    int closing;
};

static int
handover_put(struct handover *h, struct soap *s)
{
    int ok = 0;

    pthread_mutex_lock(&h->mu);
    if (h->n < h->cap) {
        h->slot[(h->head + h->n) % h->cap] = s;
        h->n++;
        ok = 1;
        pthread_cond_signal(&h->cv);
    }
    pthread_mutex_unlock(&h->mu);
    return ok;
}

static struct soap *
handover_take(struct handover *h)
{
    struct soap *s = NULL;

    pthread_mutex_lock(&h->mu);
    while (h->n == 0 && !h->closing)
        pthread_cond_wait(&h->cv, &h->mu);
    if (h->n > 0) {
        s = h->slot[h->head];
        h->head = (h->head + 1) % h->cap;
        h->n--;
    }
    pthread_mutex_unlock(&h->mu);
    return s;
}

/* ---- serving one connection ------------------------------------------------- */

struct worker {
    pthread_t tid;
    const struct gateway *gw;
    struct handover *h;
    struct queue *q;
};
static int
others_waiting(const struct request *r)
{
    struct handover *h = r->pool;
    int n;

    pthread_mutex_lock(&h->mu);
    n = h->n > 0;
    pthread_mutex_unlock(&h->mu);
    return n;
}

static void
connection(struct worker *w, struct soap *soap)
{
    struct request r;
    X509 *cert;

    memset(&r, 0, sizeof(r));
    r.gw = w->gw;
    r.q = w->q;
    r.others_waiting = others_waiting;
    r.pool = w->h;
    soap->user = &r;
    cert = SSL_get1_peer_certificate(soap->ssl);    /* handshake done */
    r.partner = partner_of(cert);
    X509_free(cert);
    if (r.partner == NULL) {
        log_warn("tls: %s presented no known client certificate", soap->host);
        goto out;
    }
    server_serve(soap, &r);
out:
    soap->user = NULL;
    soap_destroy(soap);
    soap_end(soap);
    soap_free(soap);           /* closes the socket and the TLS session */
    malloc_trim(0);            /* what this connection parsed goes back */
}

static void *
worker_main(void *arg)
{
    struct worker *w = arg;
    struct soap *soap;

    while ((soap = handover_take(w->h)) != NULL)
        connection(w, soap);
    return NULL;
}

/* ---- the acceptor ------------------------------------------------------------ */

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
    struct soap *master;
    struct handover *h;
    struct pending p[PENDING_MAX];
    size_t n;
    unsigned long long seq;
    long long handshake_ms;
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
    p->ssl = SSL_new(a->master->ctx);
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

/* The handshake is done: a known partner's connection goes to a worker. */
static void
pending_done(struct acceptor *a, size_t i)
{
    struct pending *p = &a->p[i];
    struct soap *c;
    X509 *cert;
    const struct partner *pt;

    cert = SSL_get1_peer_certificate(p->ssl);
    pt = partner_of(cert);
    X509_free(cert);
    if (pt == NULL || SSL_get_verify_result(p->ssl) != X509_V_OK) {
        pending_drop(a, i, "no known client certificate");
        return;
    }
    /* The socket stays non-blocking, as gSOAP keeps its own accepted
     * sockets when timeouts are set: it waits with select() itself. */
    c = soap_copy(a->master);
    if (c == NULL) {
        pending_drop(a, i, "out of memory");
        return;
    }
    c->socket = p->fd;
    c->ssl = p->ssl;
    c->imode |= SOAP_ENC_SSL;
    c->omode |= SOAP_ENC_SSL;
    c->port = p->port;
    snprintf(c->host, sizeof(c->host), "%s", p->host);
    a->p[i] = a->p[--a->n];             /* c owns fd and ssl now */
    if (!handover_put(a->h, c)) {
        log_warn("too many connections: refusing partner %s from %s",
                 pt->id, c->host);
        soap_free(c);                   /* closes fd, frees ssl */
    }
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

static void
acceptor_run(struct acceptor *a, int lfd, volatile sig_atomic_t *stop)
{
    static struct pollfd pfd[PENDING_MAX + 1];
    size_t i, n;
    int k;

    while (!*stop) {
        long long now = mono_ms();

        for (i = a->n; i-- > 0;)
            if (now >= a->p[i].deadline)
                pending_drop(a, i, "handshake timed out");
        pfd[0].fd = lfd;
        pfd[0].events = POLLIN;
        pfd[0].revents = 0;
        for (i = 0; i < a->n; i++) {
            pfd[i + 1].fd = a->p[i].fd;
            pfd[i + 1].events = a->p[i].events;
            pfd[i + 1].revents = 0;
        }
        n = a->n;
        if (poll(pfd, n + 1, 250) <= 0)
            continue;           /* timeout, or a signal: look at stop */
        /* Backwards: a drop moves the last entry (already seen) into i. */
        for (i = n; i-- > 0;)
            if (pfd[i + 1].revents != 0)
                pending_step(a, i);
        if (!(pfd[0].revents & POLLIN))
            continue;
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
    while (a->n > 0)
        pending_drop(a, a->n - 1, NULL);
}

/* ---- the listener ----------------------------------------------------------- */

int
server_run(const struct gateway *gw, volatile sig_atomic_t *stop)
{
    const struct config *cfg = gw->cfg;
    struct handover h;
    struct worker *w = NULL;
    struct soap *master = NULL;
    int i, started = 0, rc = 1;
    char err[512];

    tls_cfg = cfg;
    memset(&h, 0, sizeof(h));
    pthread_mutex_init(&h.mu, NULL);
    pthread_cond_init(&h.cv, NULL);
    h.cap = (size_t)cfg->max_connections;
    h.slot = calloc(h.cap, sizeof(*h.slot));
    w = calloc((size_t)cfg->workers, sizeof(*w));
    master = master_new(cfg);
    if (h.slot == NULL || w == NULL || master == NULL) {
        log_error("out of memory");
        goto out;
    }
    if (tls_setup(master, cfg, err, sizeof(err)) != 0) {
        log_error("%s", err);
        goto out;
    }
    server_serve_init(master, stop);        /* before threads */
    for (i = 0; i < cfg->workers; i++) {
        w[i].gw = gw;
        w[i].h = &h;
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
        static struct acceptor a;          /* large: not on the stack */
        int fl = fcntl(master->master, F_GETFL);

        if (fl == -1 || fcntl(master->master, F_SETFL, fl | O_NONBLOCK) == -1) {
            log_error("listener: %s", strerror(errno));
            *stop = 1;
        }
        memset(&a, 0, sizeof(a));
        a.master = master;
        a.h = &h;
        a.handshake_ms = (long long)(cfg->recv_timeout < 10 ?
                                     cfg->recv_timeout : 10) * 1000;
        a.note_window = mono_ms();
        acceptor_run(&a, master->master, stop);
    }
    log_info("stopping: finishing requests in flight");
out:
    pthread_mutex_lock(&h.mu);
    h.closing = 1;
    pthread_cond_broadcast(&h.cv);
    pthread_mutex_unlock(&h.mu);
    for (i = 0; i < started; i++)
        pthread_join(w[i].tid, NULL);
    for (i = 0; w != NULL && i < cfg->workers; i++)
        if (w[i].q != NULL)
            queue_close(w[i].q);
    if (master != NULL) {
        soap_destroy(master);
        soap_end(master);
        soap_free(master);
    }
    free(w);
    free(h.slot);
    pthread_mutex_destroy(&h.mu);
    pthread_cond_destroy(&h.cv);
    if (rc == 0)
        log_info("stopped");
    return rc;
}
