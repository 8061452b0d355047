/*
 * config.h - the gateway's configuration: parsed once, checked whole,
 * then read-only (an immutable struct config).
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * The file is in libconfig syntax (see config/ecertd.example.conf).
 * Relative paths in it are relative to the directory of the file itself.
 * Every error names file:line and what is wrong; unknown keys are errors.
 */
#ifndef ECERT_CONFIG_H
#define ECERT_CONFIG_H

#include <stddef.h>

#define CFG_ID_MAX 64
#define CFG_MAIL_BATCH_MAX 256    /* highest mail.batch */

/* Partner roles (bit set). */
enum {
    ROLE_SUBMIT = 1 << 0,   /* may hand in certificates under its country */
    ROLE_PULL   = 1 << 1,   /* may poll for what is addressed to it */
};

/* STARTTLS policy towards a mail relay. */
enum { CFG_STARTTLS_OFF = 0, CFG_STARTTLS_OPTIONAL = 1,
       CFG_STARTTLS_REQUIRED = 2 };

/* A mail relay (SMTP submission server). */
struct relay {
    char name[CFG_ID_MAX];        /* "default" for mail.relay */
    char *host;
    int port;                     /* default 25 */
    int starttls;                 /* CFG_STARTTLS_*, default required */
    char *ca;                     /* CA file to verify it, NULL: system */
    char *auth_user;              /* from auth_file, NULL: no AUTH */
    char *auth_password;          /* never logged */
    int concurrency;              /* SMTP sessions at once (each sends one
                                     message at a time), default 2 */
    int line;
};

/* How a partner receives by mail (the smtp channel). */
struct partner_mail {
    char **to;                    /* mailboxes, at least one */
    size_t nto;
    char *certificate;            /* recipient certificate (PEM) to
                                     encrypt to, NULL: signed only */
    int relay;                    /* index into config->relays */
};

struct partner {
    char id[CFG_ID_MAX];          /* [A-Za-z0-9._-]{1,63} */
    char country[3];              /* ISO 3166-1 alpha-2, upper case */
    unsigned roles;               /* ROLE_* */
    unsigned char spki_sha256[32];/* SHA-256 of the client certificate's
                                     DER SubjectPublicKeyInfo */
    int line;                     /* where it was defined */
    struct partner_mail *mail;    /* NULL: does not receive by mail */
};

struct config {
    char *path;                   /* the file, as given */
    char *country;                /* this gateway's own country */

    char *listen_addr;            /* e.g. "127.0.0.1" */
    int listen_port;

    char *tls_cert;               /* PEM server certificate (chain) */
    char *tls_key;                /* PEM private key, not world-readable */
    char *tls_ca;                 /* PEM CA(s) for client certificates */

    char *store;                  /* SQLite file */
    char *schema_dir;             /* directory holding
                                     data/standard/SPSCertificate_17p0.xsd */

    /* limits */
    long max_request_bytes;       /* gSOAP recv_maxlength */
    int xml_depth;                /* maximum element nesting */
    int max_pull;                 /* envelopes per PULLImportEnvelope */
    int recv_timeout;             /* seconds */
    int send_timeout;             /* seconds */
    int idle_timeout;             /* seconds a kept-alive connection waits */
    int workers;                  /* worker threads */
    int max_connections;          /* queued connections beyond workers */

    struct partner *partners;
    size_t npartners;

    /* mail push (the `mail` group); mail_sender == NULL: not configured */
    char *mail_sender;            /* From address */
    char *mail_ehlo;              /* EHLO name, also the Message-ID domain */
    char *sign_cert;              /* S/MIME signing certificate (PEM) */
    char *sign_key;               /* its key: not readable by others */
    char *sign_chain;             /* further chain certificates, or NULL */
    struct relay *relays;         /* [0] = mail.relay ("default"), then
                                     mail.relays in file order */
    size_t nrelays;
    int retry_first;              /* seconds before the 2nd attempt */
    double retry_factor;          /* growth per attempt */
    int retry_max_delay;          /* seconds, cap of one delay */
    int retry_max_age;            /* seconds after which it is dead */
    int mail_timeout;             /* seconds per SMTP step */
    int mail_workers;             /* push threads */
    int mail_batch;               /* deliveries one push thread claims and
                                     sends in one SMTP session */
};

/* Parse and check path.  On failure returns -1 and err holds
 * "path:line: what is wrong" (line omitted when not known). */
int config_load(const char *path, struct config **out, char *err, size_t errlen);
void config_free(struct config *c);

/* Look-ups (NULL if none). */
const struct partner *config_partner_by_spki(const struct config *c,
                                             const unsigned char sha[32]);
const struct partner *config_partner_by_id(const struct config *c,
                                           const char *id);

/* Parse "AB:CD:..." or "abcd..." (64 hex digits, colons optional,
 * optional "sha256:" prefix) into 32 bytes; 0 ok, -1 bad. */
int config_parse_fingerprint(const char *s, unsigned char out[32]);

/* SHA-256 of the DER SubjectPublicKeyInfo of the first certificate in a
 * PEM file; 0 ok, -1 with err filled. */
int config_spki_of_file(const char *pem, unsigned char out[32],
                        char *err, size_t errlen);

/* Format 32 bytes as 64 lower-case hex digits + NUL (65 bytes). */
void config_hex(const unsigned char in[32], char out[65]);

#endif
