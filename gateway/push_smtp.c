/*
 * push_smtp.c - hand one built message to a relay with libesmtp and say
 * what became of it.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * One libesmtp session per message: sessions are not shared between
 * threads.  Classification: at least one recipient and the end of data
 * accepted (2xx) -> PUSH_SENT (refused mailboxes named in the reply);
 * 5xx with nothing temporary -> PUSH_FAIL; everything else (4xx,
 * refused, reset, timeout, no answer to ".", STARTTLS missing or
 * failing) -> PUSH_RETRY.
 */
#include <stdio.h>
#include <string.h>

#include <openssl/ssl.h>          /* before libesmtp.h: enables its TLS API */
#include <openssl/x509v3.h>
#include <auth-client.h>
#include <libesmtp.h>

#include "config.h"
#include "push.h"

struct send_ctx {
    const char *msg;
    size_t len;
    int sent;                     /* the whole message was handed over */
    const struct push_relay *relay;
    char tls_note[128];           /* why STARTTLS failed, if it did */
    char last_reply[256];         /* the relay's last 4xx/5xx reply line */
};

/* libesmtp pulls the message through this: all of it in one piece. */
static const char *
message_cb(void **ctx, int *len, void *arg)
{
    struct send_ctx *s = arg;

    if (len == NULL) {            /* rewind */
        s->sent = 0;
        return NULL;
    }
    if (s->sent) {
        *len = 0;
        return NULL;
    }
    (void)ctx;
    s->sent = 1;
    *len = (int)s->len;
    return s->msg;
}

static void
event_cb(smtp_session_t session, int event, void *arg, ...)
{
    struct send_ctx *s = arg;

    (void)session;
    switch (event) {
    case SMTP_EV_EXTNA_STARTTLS:
        snprintf(s->tls_note, sizeof(s->tls_note),
                 "relay does not offer STARTTLS");
        break;
    case SMTP_EV_INVALID_PEER_CERTIFICATE:
    case SMTP_EV_NO_PEER_CERTIFICATE:
    case SMTP_EV_WRONG_PEER_CERTIFICATE:
        snprintf(s->tls_note, sizeof(s->tls_note),
                 "relay's TLS certificate is not acceptable");
        break;
    default:
        break;
    }
}

/* The protocol trace: keep the relay's last refusal line, so that a
 * session that fails early (4xx to EHLO) still says what the relay said. */
static void
monitor_cb(const char *buf, int len, int writing, void *arg)
{
    struct send_ctx *s = arg;
    int start = 0, end = len, i, n;

    if (writing || len <= 0)
        return;
    while (end > 0 && (buf[end - 1] == '\n' || buf[end - 1] == '\r'))
        end--;
    for (i = 0; i < end; i++)
        if (buf[i] == '\n')
            start = i + 1;
    n = end - start;
    if (n <= 0 || (buf[start] != '4' && buf[start] != '5'))
        return;                   /* only refusals: not "221 Bye" */
    if (n > (int)sizeof(s->last_reply) - 1)
        n = (int)sizeof(s->last_reply) - 1;
    memcpy(s->last_reply, buf + start, (size_t)n);
    s->last_reply[n] = '\0';
    for (i = 0; i < n; i++)
        if ((unsigned char)s->last_reply[i] < 0x20)
            s->last_reply[i] = ' ';
}

static int
auth_interact(auth_client_request_t request, char **result, int fields,
              void *arg)
{
    const struct push_relay *r = arg;
    int i;

    for (i = 0; i < fields; i++) {
        if (request[i].flags & AUTH_PASS)
            result[i] = (char *)r->password;
        else if (request[i].flags & AUTH_USER)
            result[i] = (char *)r->user;
        else
            return 0;
    }
    return 1;
}

/* TLS towards the relay: verify its certificate and its name. */
static SSL_CTX *
relay_tls(const struct push_relay *r, char *reply, size_t replylen)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    X509_VERIFY_PARAM *vp;

    if (ctx == NULL)
        goto fail;
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    if (r->ca != NULL ? SSL_CTX_load_verify_locations(ctx, r->ca, NULL) != 1
                      : SSL_CTX_set_default_verify_paths(ctx) != 1)
        goto fail;
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    vp = SSL_CTX_get0_param(ctx);
    X509_VERIFY_PARAM_set_hostflags(vp, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    if (X509_VERIFY_PARAM_set1_host(vp, r->host, 0) != 1 &&
        X509_VERIFY_PARAM_set1_ip_asc(vp, r->host) != 1)
        goto fail;
    return ctx;
fail:
    snprintf(reply, replylen, "cannot set up TLS for relay %s", r->host);
    SSL_CTX_free(ctx);
    return NULL;
}

static void
status_text(char *reply, size_t replylen, const char *what,
            const smtp_status_t *st)
{
    const char *t = st != NULL && st->text != NULL ? st->text : "";
    char clean[256];
    size_t i, j = 0;

    for (i = 0; t[i] != '\0' && j < sizeof(clean) - 1; i++)
        clean[j++] = (t[i] == '\r' || t[i] == '\n') ? ' ' : t[i];
    while (j > 0 && clean[j - 1] == ' ')
        j--;
    clean[j] = '\0';
    if (st == NULL || st->code == 0)
        snprintf(reply, replylen, "%s: no reply (connection closed)", what);
    else
        snprintf(reply, replylen, "%s: %d %s", what, st->code, clean);
}

int
push_smtp_send(const struct push_relay *relay, const char *from,
               const char *const *to, size_t nto, const char *msg,
               size_t msglen, char *reply, size_t replylen)
{
    smtp_session_t session = NULL;
    smtp_message_t message;
    smtp_recipient_t *rcpt = NULL;
    auth_context_t auth = NULL;
    SSL_CTX *tls = NULL;
    const smtp_status_t *st;
    struct send_ctx s;
    char hostport[300], ebuf[128];
    long ms = (long)relay->timeout * 1000L;
    int rc = PUSH_RETRY, worst = PUSH_SENT;
    size_t accepted = 0, temporary = 0;
    char refused[256] = "";
    size_t i;

    memset(&s, 0, sizeof(s));
    s.msg = msg;
    s.len = msglen;
    s.relay = relay;
    snprintf(reply, replylen, "not sent");
    session = smtp_create_session();
    rcpt = calloc(nto, sizeof(*rcpt));
    if (session == NULL || rcpt == NULL) {
        snprintf(reply, replylen, "out of memory");
        goto out;
    }
    snprintf(hostport, sizeof(hostport), "%s:%d", relay->host, relay->port);
    smtp_set_server(session, hostport);
    smtp_set_hostname(session, relay->ehlo);
    smtp_set_eventcb(session, event_cb, &s);
    smtp_set_monitorcb(session, monitor_cb, &s, 0);
    smtp_set_timeout(session, Timeout_GREETING | Timeout_OVERRIDE_RFC2822_MINIMUM, ms);
    smtp_set_timeout(session, Timeout_ENVELOPE | Timeout_OVERRIDE_RFC2822_MINIMUM, ms);
    smtp_set_timeout(session, Timeout_DATA | Timeout_OVERRIDE_RFC2822_MINIMUM, ms);
    smtp_set_timeout(session, Timeout_TRANSFER | Timeout_OVERRIDE_RFC2822_MINIMUM, ms);
    smtp_set_timeout(session, Timeout_DATA2 | Timeout_OVERRIDE_RFC2822_MINIMUM, ms);
    if (relay->starttls != CFG_STARTTLS_OFF) {
        tls = relay_tls(relay, reply, replylen);
        if (tls == NULL)
            goto out;
        smtp_starttls_set_ctx(session, tls);
        smtp_starttls_enable(session, relay->starttls == CFG_STARTTLS_REQUIRED ?
                             Starttls_REQUIRED : Starttls_ENABLED);
    }
    if (relay->user != NULL) {
        auth = auth_create_context();
        if (auth == NULL) {
            snprintf(reply, replylen, "out of memory");
            goto out;
        }
        auth_set_mechanism_flags(auth, AUTH_PLUGIN_PLAIN, 0);
        auth_set_interact_cb(auth, auth_interact, (void *)relay);
        smtp_auth_set_context(session, auth);
    }
    message = smtp_add_message(session);
    if (message == NULL) {
        snprintf(reply, replylen, "out of memory");
        goto out;
    }
    smtp_set_reverse_path(message, from);
    smtp_set_messagecb(message, message_cb, &s);
    for (i = 0; i < nto; i++) {
        rcpt[i] = smtp_add_recipient(message, to[i]);
        if (rcpt[i] == NULL) {
            snprintf(reply, replylen, "out of memory");
            goto out;
        }
    }

    if (!smtp_start_session(session)) {
        /* refused, reset, timeout, TLS, 4xx to the greeting: retry */
        if (s.tls_note[0])
            snprintf(reply, replylen, "%s: %s", hostport, s.tls_note);
        else if (s.last_reply[0] >= '1' && s.last_reply[0] <= '5')
            snprintf(reply, replylen, "%s: %s", hostport, s.last_reply);
        else
            snprintf(reply, replylen, "%s: %s", hostport,
                     smtp_strerror(smtp_errno(), ebuf, sizeof(ebuf)));
        goto out;
    }
    /* The session ran; look at each step's reply, worst first. */
    st = smtp_reverse_path_status(message);
    if (st == NULL || st->code == 0) {
        snprintf(reply, replylen, "%s: %s", hostport, s.tls_note[0] ?
                 s.tls_note : "no reply to MAIL FROM (timeout or connection closed)");
        goto out;
    }
    if (st->code < 200 || st->code >= 300) {
        status_text(reply, replylen, "MAIL FROM", st);
        rc = st->code >= 500 ? PUSH_FAIL : PUSH_RETRY;
        goto out;
    }
    /* Recipients: the message goes through if at least one mailbox took
     * it; refused ones are named in the reply (the delivery is one per
     * partner, and resending would duplicate it for the others). */
    for (i = 0; i < nto; i++) {
        st = smtp_recipient_status(rcpt[i]);
        if (st != NULL && st->code >= 200 && st->code < 300) {
            accepted++;
            continue;
        }
        status_text(refused, sizeof(refused), "RCPT TO", st);
        if (st == NULL || st->code < 500)
            temporary++;
    }
    if (accepted == 0) {
        snprintf(reply, replylen, "%s", refused);
        rc = temporary > 0 ? PUSH_RETRY : PUSH_FAIL;
        goto out;
    }
    st = smtp_message_transfer_status(message);
    if (st != NULL && st->code >= 300 && st->code < 400)
        snprintf(reply, replylen, "DATA: no reply to the end of data "
                 "(timeout or connection closed)");
    else
        status_text(reply, replylen, "DATA", st);
    /* Only a 2xx to the final "." delivers: a 354 left over from DATA
     * means the end of data got no answer (timeout). */
    if (st == NULL || st->code < 200 || (st->code >= 300 && st->code < 500))
        worst = PUSH_RETRY;
    else if (st->code >= 500)
        worst = PUSH_FAIL;
    else if (accepted < nto) {
        size_t l = strlen(reply);

        snprintf(reply + l, replylen - l, "; not for every mailbox: %s",
                 refused);
    }
    rc = worst;
out:
    if (session != NULL)
        smtp_destroy_session(session);
    if (auth != NULL)
        auth_destroy_context(auth);
    SSL_CTX_free(tls);
    free(rcpt);
    return rc;
}
