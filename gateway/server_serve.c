/*
 * server_serve.c - serving the requests of one connection: the keep-alive
 * loop around gSOAP's dispatcher, the input guard in front of its parser,
 * and the request log line.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * Used by the workers (server_tls.c) and by the SOAP fuzz harness, which
 * thus fuzzes exactly what a partner's bytes go through.
 */
#include <errno.h>
#include <limits.h>
#include <malloc.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "soapH.h"
#include "log.h"
#include "server.h"

#define BIG_REQUEST    (256 * 1024)  /* bytes: trim the heap after one */
#define LINGER_MS      10        /* wait this long for a next request
                                    before parking an idle connection */

static long
ms_since(const struct timespec *t0)
{
    struct timespec t;

    clock_gettime(CLOCK_MONOTONIC, &t);
    return (t.tv_sec - t0->tv_sec) * 1000 + (t.tv_nsec - t0->tv_nsec) / 1000000;
}

static void
request_log(struct soap *soap, struct request *r)
{
    char *p;

    for (p = r->note; *p != '\0'; p++)     /* client text: one log line */
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            *p = ' ';
    log_info("partner=%s op=%s tracking=%s outcome=%s count=%d ms=%ld%s%s%s",
             r->partner ? r->partner->id : "-", r->op ? r->op : "-",
             r->tracking[0] ? r->tracking : "-", r->outcome ? r->outcome : "ok",
             r->count, ms_since(&r->t0), r->note[0] ? " reason=\"" : "",
             r->note, r->note[0] ? "\"" : "");
    (void)soap;
}

/* gSOAP's fault text on one line (it spreads it over several). */
void
server_fault_line(struct soap *soap, char *buf, size_t len)
{
    const char *s = soap_fault_string(soap);
    const char *d = soap_fault_detail(soap);
    char *p;

    snprintf(buf, len, "%s%s%s", s ? s : "error", d ? ": " : "", d ? d : "");
    for (p = buf; *p != '\0'; p++)
        if (*p == '\r' || *p == '\n' || *p == '\t')
            *p = ' ';
}

static const char *
local_name(const char *tag)
{
    const char *c = strrchr(tag, ':');

    return c != NULL ? c + 1 : tag;
}

/* The first header line of a request ends the idle wait: from then on
 * the (shorter or longer) per-read request timeout applies. */
static int (*http_parsehdr)(struct soap *, const char *, const char *);
static size_t (*sock_recv)(struct soap *, char *, size_t);
static int (*http_parse)(struct soap *);
static volatile sig_atomic_t *stop_flag;

void
server_serve_init(struct soap *master, volatile sig_atomic_t *stop)
{
    http_parsehdr = master->fparsehdr;     /* gSOAP's own, before threads */
    http_parse = master->fparse;
    sock_recv = master->frecv;
    stop_flag = stop;
}

static int
parsehdr_cb(struct soap *soap, const char *key, const char *val)
{
    const struct request *r = soap->user;

    soap->recv_timeout = r->gw->cfg->recv_timeout;
    return http_parsehdr(soap, key, val);
}

/* ---- input guard -------------------------------------------------------------
 * gSOAP reads the body until the envelope ends, even past Content-Length
 * when the body is not an envelope at all; it passes a DOCTYPE in the
 * envelope through; and it reads bytes that are not UTF-8 as Latin-1.
 * So: every read goes through recv_cb, which never reads past the
 * declared body (then EOF); parse_cb (after the HTTP header) checks the
 * declared size against max_request_bytes; and prepare_cb sees the body
 * as gSOAP will parse it (after chunked decoding and decompression) and
 * refuses any document type or entity declaration and any byte sequence
 * that is not UTF-8, before gSOAP parses it. */
static const char *const forbidden[] = { "<!DOCTYPE", "<!ENTITY" };

static int
markup_refused(struct request *r, const char *buf, size_t n)
{
    char edge[32];
    size_t i, k, m;

    for (i = 0; i < sizeof(forbidden) / sizeof(forbidden[0]); i++) {
        const char *f = forbidden[i];
        size_t fl = strlen(f);

        if (memmem(buf, n, f, fl) != NULL)
            return 1;
        /* split across the previous read and this one */
        m = n < fl - 1 ? n : fl - 1;
        memcpy(edge, r->tail, r->ntail);
        memcpy(edge + r->ntail, buf, m);
        if (memmem(edge, r->ntail + m, f, fl) != NULL)
            return 1;
    }
    /* keep the last bytes for the next read */
    k = n < sizeof(r->tail) ? n : sizeof(r->tail);
    if (k == sizeof(r->tail)) {
        memcpy(r->tail, buf + n - k, k);
        r->ntail = k;
    } else {
        size_t keep = r->ntail + k > sizeof(r->tail) ?
                      sizeof(r->tail) - k : r->ntail;

        memmove(r->tail, r->tail + r->ntail - keep, keep);
        memcpy(r->tail + keep, buf, k);
        r->ntail = keep + k;
    }
    return 0;
}

/* Refuse the request: the reads end (EOF), and gSOAP, which answers an
 * EOF only when no timeouts are set, sends the fault seterror_cb words. */
static void
refuse(struct soap *soap, struct request *r, const char *why)
{
    r->refused = why;
    r->outcome = "client-fault";
    snprintf(r->note, sizeof(r->note), "%s", why);
    soap->fpoll = NULL;     /* unread request bytes must not stop the answer */
    soap->recv_timeout = 0;
    soap->send_timeout = 0;
}

static void
seterror_cb(struct soap *soap, const char **code, const char **string)
{
    struct request *r = soap->user;

    if (r == NULL || r->refused == NULL)
        return;
    if (soap->version == 0)
        soap->version = 1;
    *code = "SOAP-ENV:Client";
    *string = r->refused;
    hub_fault_detail(soap, r->refused);
}

/* Streaming UTF-8 check (RFC 3629: no overlongs, no surrogates, nothing
 * above U+10FFFF); the state carries over between reads. */
static int
utf8_ok(struct request *r, const unsigned char *b, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++) {
        unsigned char c = b[i];

        if (r->u8_need > 0) {
            if (c < r->u8_lo || c > r->u8_hi)
                return 0;
            r->u8_need--;
            r->u8_lo = 0x80;
            r->u8_hi = 0xBF;
            continue;
        }
        if (c < 0x80)
            continue;
        r->u8_lo = 0x80;
        r->u8_hi = 0xBF;
        if (c >= 0xC2 && c <= 0xDF)
            r->u8_need = 1;
        else if (c >= 0xE0 && c <= 0xEF) {
            r->u8_need = 2;
            if (c == 0xE0)
                r->u8_lo = 0xA0;
            else if (c == 0xED)
                r->u8_hi = 0x9F;
        } else if (c >= 0xF0 && c <= 0xF4) {
            r->u8_need = 3;
            if (c == 0xF0)
                r->u8_lo = 0x90;
            else if (c == 0xF4)
                r->u8_hi = 0x8F;
        } else {
            return 0;
        }
    }
    return 1;
}

static int
prepare_cb(struct soap *soap, const char *buf, size_t len)
{
    struct request *r = soap->user;

    if (r->refused != NULL)
        return SOAP_FAULT;
    if (markup_refused(r, buf, len)) {
        refuse(soap, r, "DOCTYPE and ENTITY declarations are not allowed");
        return SOAP_FAULT;
    }
    if (!utf8_ok(r, (const unsigned char *)buf, len)) {
        refuse(soap, r, "the request is not valid UTF-8");
        return SOAP_FAULT;
    }
    return SOAP_OK;
}

static size_t
recv_cb(struct soap *soap, char *buf, size_t len)
{
    struct request *r = soap->user;
    size_t n;

    if (r->refused != NULL)
        return 0;
    if (r->body_left == 0) {
        /* gSOAP wants more than the declared body: no envelope end. */
        refuse(soap, r, "the request body is not a complete SOAP envelope");
        return 0;
    }
    if (r->body_left > 0 && (long long)len > r->body_left)
        len = (size_t)r->body_left;
    n = sock_recv(soap, buf, len);
    if (n == 0)
        return 0;
    if (r->body_left > 0)
        r->body_left -= (long long)n;
    return n;
}

static int
parse_cb(struct soap *soap)
{
    struct request *r = soap->user;
    int rc = http_parse(soap);

    if (soap->length > (ULONG64)r->gw->cfg->max_request_bytes) {
        /* Whatever the method: gSOAP would otherwise allocate the
         * declared length to read a body it does not parse as SOAP. */
        refuse(soap, r, "request body larger than max_request_bytes");
        soap->length = 0;
        return SOAP_EOM;
    }
    if (rc != SOAP_OK)
        return rc;
    if (soap->length > 0) {
        size_t buffered = soap->buflen - soap->bufidx;

        r->body_left = (long long)soap->length > (long long)buffered ?
                       (long long)soap->length - (long long)buffered : 0;
    }
    /* gSOAP hands the body bytes read with the header to prepare_cb
     * again, from the body's start: the scanners start over too. */
    r->u8_need = 0;
    r->ntail = 0;
    return SOAP_OK;
}

/* Send on a TLS connection: write first, and wait (poll, bounded by
 * send_timeout) only when the socket is full; gSOAP's own sender would
 * select() before every write. */
static int
send_cb(struct soap *soap, const char *s, size_t n)
{
    const struct request *r = soap->user;
    long long left = (long long)r->gw->cfg->send_timeout * 1000;
    struct timespec t0;

    if (soap->ssl == NULL || !soap_valid_socket(soap->socket))
        return SOAP_EOF;                /* closed already (by gSOAP) */
    clock_gettime(CLOCK_MONOTONIC, &t0);
    while (n > 0) {
        struct pollfd pfd;
        int w, e;

        ERR_clear_error();
        w = SSL_write(soap->ssl, s, n > INT_MAX ? INT_MAX : (int)n);
        if (w > 0) {
            s += w;
            n -= (size_t)w;
            continue;
        }
        e = SSL_get_error(soap->ssl, w);
        if (e != SSL_ERROR_WANT_WRITE && e != SSL_ERROR_WANT_READ) {
            soap->errnum = errno;
            return SOAP_EOF;
        }
        pfd.fd = soap->socket;
        pfd.events = e == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT;
        pfd.revents = 0;
        if (left - ms_since(&t0) <= 0 ||
            (poll(&pfd, 1, (int)(left - ms_since(&t0))) < 0 && errno != EINTR))
            return SOAP_EOF;
    }
    return SOAP_OK;
}

/* Does the next request arrive within ms (buffered by gSOAP or TLS, or on
 * the socket)? */
static int
request_pending(struct soap *soap, int ms)
{
    struct pollfd pfd;

    if (soap->bufidx < soap->buflen)
        return 1;
    if (soap->ssl != NULL && SSL_has_pending(soap->ssl))
        return 1;
    pfd.fd = soap->socket;
    pfd.events = POLLIN;
    pfd.revents = 0;
    return poll(&pfd, 1, ms) > 0;
}

/* After each request: stop keeping the connection alive once we stop. */
static int
serveloop_cb(struct soap *soap)
{
    if (*stop_flag)
        soap->keep_alive = 0;
    return SOAP_OK;
}

int
server_serve(struct soap *soap, struct request *r)
{
    int first = 1;

    soap->fparsehdr = parsehdr_cb;
    soap->fparse = parse_cb;
    soap->frecv = recv_cb;
    soap->fseterror = seterror_cb;
    soap->fpreparerecv = prepare_cb;
    if (soap->ssl != NULL)
        soap->fsend = send_cb;
    do {
        /* Between requests: unless the next one is already here (or,
         * when nobody waits for a worker, arrives within a moment), give
         * the connection back to be parked, so that idle connections
         * never hold a worker. */
        if (!first && r->others_waiting != NULL &&
            !request_pending(soap, r->others_waiting(r) ? 0 : LINGER_MS))
            return 1;
        first = 0;
        if (soap->keep_alive > 0 && soap->max_keep_alive > 0)
            soap->keep_alive--;
        r->op = NULL;
        r->tracking[0] = '\0';
        r->outcome = NULL;
        r->note[0] = '\0';
        r->count = 0;
        r->body_left = -1;
        r->ntail = 0;
        r->u8_need = 0;
        r->refused = NULL;
        soap->send_timeout = r->gw->cfg->send_timeout;
        clock_gettime(CLOCK_MONOTONIC, &r->t0);
        /* Without a pool to park in, waiting on a kept-alive connection
         * for its next request is idling. */
        if (r->others_waiting == NULL && soap->keep_alive < soap->max_keep_alive)
            soap->recv_timeout = r->gw->cfg->idle_timeout;
        else
            soap->recv_timeout = r->gw->cfg->recv_timeout;
        if (soap_begin_serve(soap)) {
            if (soap->error >= SOAP_STOP) {
                /* e.g. form data: gSOAP answered nothing; we do. */
                soap->keep_alive = 0;
                if (r->refused != NULL)
                    hub_fault(soap, 1, "%s", r->refused);
                else
                    hub_fault(soap, 1, "not a SOAP request: POST a SOAP 1.1 "
                              "envelope as text/xml");
                soap_send_fault(soap);
                request_log(soap, r);
                return 0;
            }
            if (r->refused != NULL) {       /* answered by gSOAP */
                request_log(soap, r);
                return 0;
            }
            if (soap->error != SOAP_EOF || soap->errnum != 0) {
                char buf[256];

                server_fault_line(soap, buf, sizeof(buf));
                r->outcome = "bad-request";
                snprintf(r->note, sizeof(r->note), "%s", buf);
                request_log(soap, r);
            }
            return 0;
        }
        if (soap_serve_request(soap) || serveloop_cb(soap)) {
            if (r->refused != NULL) {
                soap->keep_alive = 0;
                hub_fault(soap, 1, "%s", r->refused);
                soap_send_fault(soap);
                request_log(soap, r);
                return 0;
            }
            if (soap->error == SOAP_NO_METHOD && soap->tag[0] == '\0') {
                soap->keep_alive = 0;
                hub_fault(soap, 1, "the request body is not a SOAP 1.1 "
                          "envelope with an operation");
                soap_send_fault(soap);
                request_log(soap, r);
                return 0;
            }
            if (soap->error == SOAP_NO_METHOD) {
                char op[64];

                snprintf(op, sizeof(op), "%.*s", (int)sizeof(op) - 1, local_name(soap->tag));
                r->op = op;
                hub_fault(soap, 1, "operation %s is not supported by this "
                          "gateway", op);
                soap->keep_alive = 0;   /* its body was not read */
                soap_send_fault(soap);
                request_log(soap, r);
                return 0;
            }
            if (soap->error && soap->error < SOAP_STOP) {
                if (r->outcome == NULL) {
                    const char *s = soap_fault_string(soap);

                    r->outcome = "client-fault";
                    snprintf(r->note, sizeof(r->note), "%s", s ? s : "error");
                }
                soap_send_fault(soap);
                request_log(soap, r);
                return 0;
            }
        }
        request_log(soap, r);
        soap_destroy(soap);
        soap_end(soap);
        if (soap->count > BIG_REQUEST)
            malloc_trim(0);             /* give a large parse's memory back */
    } while (soap->keep_alive);
    return 0;
}

