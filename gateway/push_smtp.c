/*
 * push_smtp.c - hand a batch of built messages to a relay in one libesmtp
 * session and say what became of each.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * One session per batch (connect, EHLO, STARTTLS and AUTH are paid once),
 * one SMTP transaction per message; sessions are not shared between
 * threads.  Each message is judged by its own replies: at least one
 * recipient and its end of data accepted (2xx) -> PUSH_SENT (refused
 * mailboxes named in the reply); 5xx with nothing temporary -> PUSH_FAIL;
 * everything else (4xx, refused, reset, timeout, no answer to ".",
 * STARTTLS missing or failing, the session gone before its turn) ->
 * PUSH_RETRY.  libesmtp sends RSET after a refused transaction and goes
 * on with the next message, so one message's refusal is its own.
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>

#include <openssl/ssl.h>          /* before libesmtp.h: enables its TLS API */
#include <openssl/x509v3.h>
#include <auth-client.h>
#include <libesmtp.h>

#include "config.h"
#include "push.h"

/* One message as libesmtp pulls it. */
struct msg_src {
    const char *msg;
    size_t len;
    int sent;                     /* the whole message was handed over */
};

/* What the session's callbacks learn. */
struct send_ctx {
    const struct push_relay *relay;
    char tls_note[128];           /* why STARTTLS failed, if it did */
    char last_reply[256];         /* the relay's last 4xx/5xx reply line */
};

/* A message of the session with its libesmtp handles. */
struct outgoing {
    struct msg_src src;
    smtp_message_t message;
    smtp_recipient_t *rcpt;       /* the message's nto recipients */
};

/* libesmtp pulls the message through this: all of it in one piece. */
static const char *
message_cb(void **ctx, int *len, void *arg)
{
    struct msg_src *s = arg;

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

/* peer_is - sa is the relay: its port, and its address when the relay
 * is given as one */
static int
peer_is(const struct sockaddr_storage *sa, const struct push_relay *r)
{
    struct in_addr a4;
    struct in6_addr a6;

    if (sa->ss_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;

        return ntohs(in->sin_port) == r->port &&
               (inet_pton(AF_INET, r->host, &a4) != 1 ||
                in->sin_addr.s_addr == a4.s_addr);
    }
    if (sa->ss_family == AF_INET6) {
        const struct sockaddr_in6 *in = (const struct sockaddr_in6 *)sa;

        return ntohs(in->sin6_port) == r->port &&
               (inet_pton(AF_INET6, r->host, &a6) != 1 ||
                memcmp(&in->sin6_addr, &a6, sizeof(a6)) == 0);
    }
    return 0;
}

/* Nagle's algorithm holds each small write of a message (libesmtp writes
 * 2 KB at a time) until the relay has acknowledged the previous one, and
 * a relay waiting for the end of data delays its acknowledgement (40 ms
 * on Linux): one stall per message, which caps a session at about 25
 * messages a second.  Postfix's SMTP client turns Nagle off for the same
 * reason.  libesmtp does not hand out its socket, so when it reports the
 * connection, every connected TCP socket of this process whose peer is
 * the relay gets TCP_NODELAY: ecertd makes no outbound connections but
 * push sessions, so these are this session's and other workers' sessions
 * to the same relay (for which it is right too).  Best effort: a socket
 * that refuses keeps Nagle, which costs speed, never correctness. */
static void
relay_nodelay(const struct push_relay *r)
{
    DIR *d = opendir("/proc/self/fd");
    struct dirent *de;
    struct sockaddr_storage sa;
    struct stat st;
    socklen_t len;
    char *end;
    long fd;
    int one = 1, type;

    if (d == NULL)
        return;
    while ((de = readdir(d)) != NULL) {
        fd = strtol(de->d_name, &end, 10);
        if (*end != '\0' || end == de->d_name || fd < 0 || fd == dirfd(d))
            continue;
        len = sizeof(type);
        if (fstat((int)fd, &st) != 0 || !S_ISSOCK(st.st_mode) ||
            getsockopt((int)fd, SOL_SOCKET, SO_TYPE, &type, &len) != 0 ||
            type != SOCK_STREAM)
            continue;
        len = sizeof(sa);
        if (getpeername((int)fd, (struct sockaddr *)&sa, &len) != 0 ||
            !peer_is(&sa, r))
            continue;
        (void)setsockopt((int)fd, IPPROTO_TCP, TCP_NODELAY, &one,
                         sizeof(one));
    }
    closedir(d);
}

static void
event_cb(smtp_session_t session, int event, void *arg, ...)
{
    struct send_ctx *s = arg;

    (void)session;
    switch (event) {
    case SMTP_EV_CONNECT:
        relay_nodelay(s->relay);
        break;
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

/* session_setup - server, timeouts, callbacks, STARTTLS and AUTH of the
 * session; 0 ok, -1 with reply */
static int
session_setup(smtp_session_t session, const char *hostport,
              struct send_ctx *s, SSL_CTX **tls, auth_context_t *auth,
              char *reply, size_t replylen)
{
    const struct push_relay *relay = s->relay;
    long ms = (long)relay->timeout * 1000L;

    smtp_set_server(session, hostport);
    smtp_set_hostname(session, relay->ehlo);
    smtp_set_eventcb(session, event_cb, s);
    smtp_set_monitorcb(session, monitor_cb, s, 0);
    smtp_set_timeout(session, Timeout_GREETING | Timeout_OVERRIDE_RFC2822_MINIMUM, ms);
    smtp_set_timeout(session, Timeout_ENVELOPE | Timeout_OVERRIDE_RFC2822_MINIMUM, ms);
    smtp_set_timeout(session, Timeout_DATA | Timeout_OVERRIDE_RFC2822_MINIMUM, ms);
    smtp_set_timeout(session, Timeout_TRANSFER | Timeout_OVERRIDE_RFC2822_MINIMUM, ms);
    smtp_set_timeout(session, Timeout_DATA2 | Timeout_OVERRIDE_RFC2822_MINIMUM, ms);
    if (relay->starttls != CFG_STARTTLS_OFF) {
        *tls = relay_tls(relay, reply, replylen);
        if (*tls == NULL)
            return -1;
        smtp_starttls_set_ctx(session, *tls);
        smtp_starttls_enable(session, relay->starttls == CFG_STARTTLS_REQUIRED ?
                             Starttls_REQUIRED : Starttls_ENABLED);
    }
    if (relay->user != NULL) {
        *auth = auth_create_context();
        if (*auth == NULL) {
            snprintf(reply, replylen, "out of memory");
            return -1;
        }
        auth_set_mechanism_flags(*auth, AUTH_PLUGIN_PLAIN, 0);
        auth_set_interact_cb(*auth, auth_interact, (void *)relay);
        smtp_auth_set_context(session, *auth);
    }
    return 0;
}

/* add_messages - one libesmtp message per m[i], in order, each with its
 * recipients (rcpt holds room for all of them); 0 ok, -1 with reply */
static int
add_messages(smtp_session_t session, const char *from, struct push_mail *m,
             size_t n, struct outgoing *out, smtp_recipient_t *rcpt,
             char *reply, size_t replylen)
{
    size_t i, k;

    for (i = 0; i < n; i++) {
        out[i].src.msg = m[i].msg;
        out[i].src.len = m[i].msglen;
        out[i].rcpt = rcpt;
        rcpt += m[i].nto;
        out[i].message = smtp_add_message(session);
        if (out[i].message == NULL)
            goto nomem;
        smtp_set_reverse_path(out[i].message, from);
        smtp_set_messagecb(out[i].message, message_cb, &out[i].src);
        for (k = 0; k < m[i].nto; k++) {
            out[i].rcpt[k] = smtp_add_recipient(out[i].message, m[i].to[k]);
            if (out[i].rcpt[k] == NULL)
                goto nomem;
        }
    }
    return 0;
nomem:
    snprintf(reply, replylen, "out of memory");
    return -1;
}

/* session_lost - the reply of a message that got no answer at all to its
 * MAIL FROM: why the session never reached it (ok: whether the session
 * ran, i.e. smtp_start_session's answer) */
static void
session_lost(const struct send_ctx *s, const char *hostport, int ok,
             char *reply, size_t replylen)
{
    char ebuf[128];

    if (s->tls_note[0])
        snprintf(reply, replylen, "%s: %s", hostport, s->tls_note);
    else if (ok)
        snprintf(reply, replylen, "%s: no reply to MAIL FROM (timeout or "
                 "connection closed)", hostport);
    else if (s->last_reply[0] >= '1' && s->last_reply[0] <= '5')
        /* refused, reset, timeout, 4xx to the greeting or EHLO */
        snprintf(reply, replylen, "%.240s: %s", hostport, s->last_reply);
    else
        snprintf(reply, replylen, "%s: %s", hostport,
                 smtp_strerror(smtp_errno(), ebuf, sizeof(ebuf)));
}

/* classify - what became of one message of the session, from its own
 * replies; lost is the reply for a message whose MAIL FROM went
 * unanswered */
static void
classify(const struct outgoing *o, struct push_mail *m, const char *lost)
{
    const smtp_status_t *st;
    char refused[256] = "";
    size_t i, l, accepted = 0, temporary = 0;

    m->outcome = PUSH_RETRY;
    st = smtp_reverse_path_status(o->message);
    if (st == NULL || st->code == 0) {
        snprintf(m->reply, sizeof(m->reply), "%s", lost);
        return;
    }
    if (st->code < 200 || st->code >= 300) {
        status_text(m->reply, sizeof(m->reply), "MAIL FROM", st);
        if (st->code >= 500)
            m->outcome = PUSH_FAIL;
        return;
    }
    /* Recipients: the message goes through if at least one mailbox took
     * it; refused ones are named in the reply (the delivery is one per
     * partner, and resending would duplicate it for the others). */
    for (i = 0; i < m->nto; i++) {
        st = smtp_recipient_status(o->rcpt[i]);
        if (st != NULL && st->code >= 200 && st->code < 300) {
            accepted++;
            continue;
        }
        status_text(refused, sizeof(refused), "RCPT TO", st);
        if (st == NULL || st->code < 500)
            temporary++;
    }
    if (accepted == 0) {
        snprintf(m->reply, sizeof(m->reply), "%s", refused);
        m->outcome = temporary > 0 ? PUSH_RETRY : PUSH_FAIL;
        return;
    }
    st = smtp_message_transfer_status(o->message);
    if (st != NULL && st->code >= 300 && st->code < 400)
        snprintf(m->reply, sizeof(m->reply), "DATA: no reply to the end of "
                 "data (timeout or connection closed)");
    else
        status_text(m->reply, sizeof(m->reply), "DATA", st);
    /* Only a 2xx to the final "." delivers: a 354 left over from DATA
     * means the end of data got no answer (timeout, connection lost). */
    if (st == NULL || st->code < 200 || (st->code >= 300 && st->code < 500))
        return;
    if (st->code >= 500) {
        m->outcome = PUSH_FAIL;
        return;
    }
    m->outcome = PUSH_SENT;
    if (accepted < m->nto) {
        l = strlen(m->reply);
        snprintf(m->reply + l, sizeof(m->reply) - l,
                 "; not for every mailbox: %s", refused);
    }
}

size_t
push_smtp_send_batch(const struct push_relay *relay, const char *from,
                     struct push_mail *m, size_t n)
{
    smtp_session_t session = NULL;
    auth_context_t auth = NULL;
    SSL_CTX *tls = NULL;
    struct outgoing *out = NULL;
    smtp_recipient_t *rcpt = NULL;
    struct send_ctx s;
    char hostport[300], lost[PUSH_REPLY_MAX];
    size_t i, nrcpt = 0, sent = 0;
    int ok;

    memset(&s, 0, sizeof(s));
    s.relay = relay;
    snprintf(lost, sizeof(lost), "not sent");
    snprintf(hostport, sizeof(hostport), "%s:%d", relay->host, relay->port);
    for (i = 0; i < n; i++)
        nrcpt += m[i].nto;
    session = smtp_create_session();
    out = calloc(n > 0 ? n : 1, sizeof(*out));
    rcpt = calloc(nrcpt > 0 ? nrcpt : 1, sizeof(*rcpt));
    if (session == NULL || out == NULL || rcpt == NULL) {
        snprintf(lost, sizeof(lost), "out of memory");
        goto failed;
    }
    if (session_setup(session, hostport, &s, &tls, &auth, lost,
                       sizeof(lost)) != 0 ||
        add_messages(session, from, m, n, out, rcpt, lost,
                     sizeof(lost)) != 0)
        goto failed;
    /* Even a session that failed is judged message by message: only the
     * ones it never reached take the session's reason. */
    ok = smtp_start_session(session);
    session_lost(&s, hostport, ok, lost, sizeof(lost));
    for (i = 0; i < n; i++) {
        classify(&out[i], &m[i], lost);
        if (m[i].outcome == PUSH_SENT)
            sent++;
    }
    goto out;
failed:
    for (i = 0; i < n; i++) {
        m[i].outcome = PUSH_RETRY;
        snprintf(m[i].reply, sizeof(m[i].reply), "%s", lost);
    }
out:
    if (session != NULL)
        smtp_destroy_session(session);
    if (auth != NULL)
        auth_destroy_context(auth);
    SSL_CTX_free(tls);
    free(rcpt);
    free(out);
    return sent;
}
