/*
 * push.h - mail push: build, sign (and encrypt), send, classify.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * push_mime.c  builds the RFC 5322 message of one mail delivery and wraps
 *              it in S/MIME with OpenSSL CMS.
 * push_smtp.c  sends a batch of built messages through a relay in one
 *              libesmtp session and classifies each one's outcome.
 * push.c       the worker threads inside ecertd that claim due mail
 *              deliveries from the store in batches, one relay each.
 */
#ifndef ECERT_PUSH_H
#define ECERT_PUSH_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <openssl/x509.h>

/* ---- push_mime.c ------------------------------------------------------- */

struct push_signer;

/* Load the signing certificate, its private key and (optional, may be
 * NULL) further chain certificates, all PEM; check that key and
 * certificate match.  0 ok; -1 with err (naming the file). */
int push_signer_load(const char *cert, const char *key, const char *chain,
                     struct push_signer **out, char *err, size_t errlen);
void push_signer_free(struct push_signer *s);

/* Load a recipient certificate (PEM) to encrypt to.  0 ok; -1 with err. */
int push_recipient_load(const char *path, X509 **out, char *err,
                        size_t errlen);

struct push_message {
    const char *from_addr;          /* envelope and header sender */
    const char *const *to_addrs;    /* recipients */
    size_t nto;
    const char *msgid_domain;       /* right-hand side of Message-ID */
    const char *tracking;           /* the delivery: tracking number ... */
    const char *partner;            /* ... and addressee partner id */
    const char *issuer, *dest;      /* countries */
    const char *number;             /* certificate number */
    int type, status, version;
    time_t date;
    const unsigned char *content;   /* the SPSCertificate XML, as stored */
    size_t content_len;
};

/* Build the whole message (headers + body, CRLF line ends):
 *   From, To, Date, Subject (type and number), Message-ID derived from
 *   tracking + partner only (a resend carries the same id),
 *   X-ECert-Issuer/-Number/-Status/-Type/-Version/-Tracking, MIME-Version;
 *   body = S/MIME multipart/signed (detached, SHA-256) over a
 *   multipart/mixed of a short text part and the XML as an attachment
 *   (application/xml, base64, named after the certificate number), so
 *   that no line-end handling can alter the XML; when recipient is not
 *   NULL the signed entity is then encrypted to it (AES-256-CBC,
 *   application/pkcs7-mime).
 * *out is malloc'd (NUL-terminated, *outlen bytes).  0 ok; -1 with err. */
int push_build(const struct push_signer *s, X509 *recipient,
               const struct push_message *m, char **out, size_t *outlen,
               char *err, size_t errlen);

/* ---- push_smtp.c -------------------------------------------------------- */

enum push_outcome { PUSH_SENT = 0, PUSH_RETRY = 1, PUSH_FAIL = 2 };

struct push_relay {
    const char *host;
    int port;
    int starttls;                   /* CFG_STARTTLS_* from config.h */
    const char *ca;                 /* CA file to verify the relay, NULL:
                                       the system's */
    const char *user, *password;    /* SMTP AUTH, NULL: none */
    const char *ehlo;               /* our EHLO name */
    int timeout;                    /* seconds, each SMTP step */
};

#define PUSH_REPLY_MAX 512

/* One message of a session and, afterwards, what became of it. */
struct push_mail {
    const char *const *to;          /* recipients */
    size_t nto;
    const char *msg;                /* the built message, CRLF line ends */
    size_t msglen;
    int outcome;                    /* set: enum push_outcome */
    char reply[PUSH_REPLY_MAX];     /* set: the server's reply (command,
                                       code and text) or the local error */
};

/* Send m[0..n-1] (n >= 1), all from `from`, through relay in one SMTP
 * session: connect, EHLO, STARTTLS, AUTH once, then one MAIL / RCPT /
 * DATA transaction per message, then QUIT.  Each message is classified on
 * its own: PUSH_SENT only when its end of data got a 2xx (and at least
 * one recipient was accepted), PUSH_FAIL on a 5xx, PUSH_RETRY for
 * everything else (4xx at any step, connection refused or lost, timeout,
 * STARTTLS failure).  A session that breaks off part-way keeps the
 * messages already accepted as sent; the one in progress and the ones
 * after it are PUSH_RETRY.  Returns how many were sent. */
size_t push_smtp_send_batch(const struct push_relay *relay, const char *from,
                            struct push_mail *m, size_t n);

/* ---- push.c ------------------------------------------------------------- */

struct config;
struct push;

/* Load what mail push needs (signer, recipient certificates) and check
 * it.  0 ok (also when mail is not configured: *out = NULL); -1 + err. */
int push_init(const struct config *cfg, struct push **out, char *err,
              size_t errlen);

/* Start the worker threads (recovering deliveries left in flight first).
 * 0 ok; -1 + err. */
int push_start(struct push *p, char *err, size_t errlen);

/* Wake the workers: new mail deliveries may be due (after a hand-in). */
void push_kick(struct push *p);

/* Stop: let messages in flight finish, join the threads, free. */
void push_stop(struct push *p);

/* Delay before attempt number `attempts` + 1 (attempts >= 1):
 * first * factor^(attempts-1), at most max, with +-10% jitter from rnd
 * in [0,1).  Milliseconds.  Exposed for the unit tests. */
int64_t push_backoff_ms(int attempts, int first_s, double factor,
                        int max_s, double rnd);

#endif
