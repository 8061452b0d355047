/*
 * push_mime.c - build the RFC 5322 message of one mail delivery and wrap
 * it in S/MIME (OpenSSL CMS): multipart/signed, detached, SHA-256, over a
 * multipart/mixed of a short text part and the certificate XML as a
 * base64 attachment; optionally enveloped (AES-256-CBC) to one recipient.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * Rules kept here:
 *  - every line ends in CRLF and is at most 998 octets; the signed inner
 *    entity is built with CRLF line ends and signed in binary mode, so the
 *    bytes signed are the bytes sent, and the XML travels in base64 so no
 *    line-end conversion on the way can alter it;
 *  - header values taken from outside data lose their control characters
 *    (no CR/LF can reach a header) and are RFC 2047-encoded when they are
 *    not plain printable ASCII or too long for one line; addresses with
 *    control characters, spaces, angle brackets, commas, quotes or
 *    non-ASCII bytes are refused;
 *  - the Message-ID depends only on tracking number and partner, so a
 *    resend carries the same id.
 * push_build only reads the signer, so several threads may share one.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <openssl/bio.h>
#include <openssl/cms.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>

#include "push.h"

struct push_signer {
    X509 *cert;
    EVP_PKEY *key;
    STACK_OF(X509) *chain;          /* never NULL once loaded */
};

#define LINE_MAX_OCTETS 998
#define ADDR_MAX 254                /* RFC 5321 path limit less <> */
#define ID_PART_MAX 200             /* each Message-ID component */
#define NAME_MAX_CHARS 120          /* certificate number in file names */
#define TEXT_MAX_CHARS 200          /* outside values quoted in the text */
#define EW_CHUNK 30                 /* octets per RFC 2047 encoded word */

/* ------------------------------------------------------------------ */
/* growable buffer                                                      */
/* ------------------------------------------------------------------ */

struct buf {
    char *p;
    size_t len, cap;
    int oom;
};

static void
buf_add(struct buf *b, const void *data, size_t n)
{
    size_t ncap;
    char *np;

    if (b->oom)
        return;
    if (n > (size_t)-1 - b->len - 1) {
        b->oom = 1;
        return;
    }
    if (b->len + n + 1 > b->cap) {
        ncap = b->cap ? b->cap : 1024;
        while (ncap < b->len + n + 1) {
            if (ncap > (size_t)-1 / 2) {
                ncap = b->len + n + 1;
                break;
            }
            ncap *= 2;
        }
        np = realloc(b->p, ncap);
        if (np == NULL) {
            b->oom = 1;
            return;
        }
        b->p = np;
        b->cap = ncap;
    }
    if (n > 0)
        memcpy(b->p + b->len, data, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void
buf_str(struct buf *b, const char *s)
{
    buf_add(b, s, strlen(s));
}

static void buf_fmt(struct buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
buf_fmt(struct buf *b, const char *fmt, ...)
{
    char small[512];
    char *big = NULL;
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n < 0) {
        b->oom = 1;
        return;
    }
    if ((size_t)n < sizeof small) {
        buf_add(b, small, (size_t)n);
        return;
    }
    big = malloc((size_t)n + 1);
    if (big == NULL) {
        b->oom = 1;
        return;
    }
    va_start(ap, fmt);
    vsnprintf(big, (size_t)n + 1, fmt, ap);
    va_end(ap);
    buf_add(b, big, (size_t)n);
    free(big);
}

/* Append src with every LF not preceded by CR turned into CRLF (and a
 * lone CR into CRLF too). */
static void
buf_add_crlf(struct buf *b, const char *src, size_t n)
{
    size_t i, start = 0;

    for (i = 0; i < n; i++) {
        if (src[i] == '\n' && (i == 0 || src[i - 1] != '\r')) {
            buf_add(b, src + start, i - start);
            buf_add(b, "\r\n", 2);
            start = i + 1;
        } else if (src[i] == '\r' && (i + 1 == n || src[i + 1] != '\n')) {
            buf_add(b, src + start, i - start);
            buf_add(b, "\r\n", 2);
            start = i + 1;
        }
    }
    buf_add(b, src + start, n - start);
}

/* ------------------------------------------------------------------ */
/* errors                                                               */
/* ------------------------------------------------------------------ */

/* The reason of the most recent OpenSSL error, or dflt; clears the
 * thread's error queue. */
static const char *
ossl_reason(const char *dflt)
{
    unsigned long e = ERR_peek_last_error();
    const char *r = e ? ERR_reason_error_string(e) : NULL;

    ERR_clear_error();
    return r ? r : dflt;
}

static void seterr(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
seterr(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;

    if (err == NULL || errlen == 0)
        return;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* ------------------------------------------------------------------ */
/* loading                                                              */
/* ------------------------------------------------------------------ */

/* Password callback that refuses: an encrypted key fails instead of
 * prompting on a terminal the daemon does not have. */
static int
no_password(char *buf, int size, int rwflag, void *u)
{
    (void)buf;
    (void)size;
    (void)rwflag;
    (void)u;
    return -1;
}

static FILE *
open_file(const char *what, const char *path, char *err, size_t errlen)
{
    FILE *f;
    char eb[128];

    if (path == NULL || path[0] == '\0') {
        seterr(err, errlen, "%s: no file given", what);
        return NULL;
    }
    f = fopen(path, "r");
    if (f == NULL)
        seterr(err, errlen, "%s %s: %s", what, path,
               strerror_r(errno, eb, sizeof eb));
    return f;
}

/* Read every certificate in f (PEM) onto sk; returns how many were read
 * or -1 on a damaged block. */
static int
read_certs(FILE *f, STACK_OF(X509) *sk)
{
    X509 *x;
    unsigned long e;
    int n = 0;

    for (;;) {
        x = PEM_read_X509(f, NULL, no_password, NULL);
        if (x == NULL)
            break;
        if (!sk_X509_push(sk, x)) {
            X509_free(x);
            return -1;
        }
        n++;
    }
    e = ERR_peek_last_error();
    if (ERR_GET_LIB(e) == ERR_LIB_PEM &&
        ERR_GET_REASON(e) == PEM_R_NO_START_LINE) {
        ERR_clear_error();
        return n;
    }
    return -1;
}

int
push_signer_load(const char *cert, const char *key, const char *chain,
                 struct push_signer **out, char *err, size_t errlen)
{
    struct push_signer *s = NULL;
    STACK_OF(X509) *certs = NULL;
    FILE *f = NULL;
    int n, rc = -1;

    *out = NULL;
    ERR_clear_error();
    s = calloc(1, sizeof *s);
    certs = sk_X509_new_null();
    if (s == NULL || certs == NULL ||
        (s->chain = sk_X509_new_null()) == NULL) {
        seterr(err, errlen, "signer: out of memory");
        goto out;
    }

    /* certificate: the first one is ours, any further ones join the
     * chain (a "full chain" file is accepted) */
    if ((f = open_file("signer certificate", cert, err, errlen)) == NULL)
        goto out;
    n = read_certs(f, certs);
    fclose(f);
    f = NULL;
    if (n <= 0) {
        seterr(err, errlen, "signer certificate %s: %s", cert,
               n == 0 ? "no certificate in file"
                      : ossl_reason("unreadable certificate"));
        goto out;
    }
    s->cert = sk_X509_shift(certs);
    while (sk_X509_num(certs) > 0) {
        X509 *x = sk_X509_shift(certs);

        if (!sk_X509_push(s->chain, x)) {
            X509_free(x);
            seterr(err, errlen, "signer: out of memory");
            goto out;
        }
    }

    /* key: unencrypted PEM, never quoted in messages */
    if ((f = open_file("signer key", key, err, errlen)) == NULL)
        goto out;
    s->key = PEM_read_PrivateKey(f, NULL, no_password, NULL);
    fclose(f);
    f = NULL;
    if (s->key == NULL) {
        seterr(err, errlen, "signer key %s: %s (an unencrypted PEM "
               "private key is needed)", key,
               ossl_reason("unreadable key"));
        goto out;
    }
    if (X509_check_private_key(s->cert, s->key) != 1) {
        seterr(err, errlen, "signer key %s does not match certificate %s: "
               "%s", key, cert, ossl_reason("key mismatch"));
        goto out;
    }

    if (chain != NULL) {
        if ((f = open_file("signer chain", chain, err, errlen)) == NULL)
            goto out;
        n = read_certs(f, s->chain);
        fclose(f);
        f = NULL;
        if (n <= 0) {
            seterr(err, errlen, "signer chain %s: %s", chain,
                   n == 0 ? "no certificate in file"
                          : ossl_reason("unreadable certificate"));
            goto out;
        }
    }

    *out = s;
    s = NULL;
    rc = 0;
out:
    sk_X509_pop_free(certs, X509_free);
    push_signer_free(s);
    ERR_clear_error();
    return rc;
}

void
push_signer_free(struct push_signer *s)
{
    if (s == NULL)
        return;
    X509_free(s->cert);
    EVP_PKEY_free(s->key);
    sk_X509_pop_free(s->chain, X509_free);
    free(s);
}

int
push_recipient_load(const char *path, X509 **out, char *err, size_t errlen)
{
    STACK_OF(X509) *certs = NULL;
    EVP_PKEY *pk;
    FILE *f = NULL;
    int n, id, rc = -1;

    *out = NULL;
    ERR_clear_error();
    if ((certs = sk_X509_new_null()) == NULL) {
        seterr(err, errlen, "recipient: out of memory");
        goto out;
    }
    if ((f = open_file("recipient certificate", path, err, errlen)) == NULL)
        goto out;
    n = read_certs(f, certs);
    fclose(f);
    if (n <= 0) {
        seterr(err, errlen, "recipient certificate %s: %s", path,
               n == 0 ? "no certificate in file"
                      : ossl_reason("unreadable certificate"));
        goto out;
    }
    pk = X509_get0_pubkey(sk_X509_value(certs, 0));
    id = pk ? EVP_PKEY_get_base_id(pk) : EVP_PKEY_NONE;
    if (id != EVP_PKEY_RSA && id != EVP_PKEY_EC) {
        seterr(err, errlen, "recipient certificate %s: key type %s cannot "
               "be encrypted to (RSA or EC needed)", path,
               pk ? OBJ_nid2sn(id) : "unknown");
        goto out;
    }
    *out = sk_X509_shift(certs);
    rc = 0;
out:
    sk_X509_pop_free(certs, X509_free);
    ERR_clear_error();
    return rc;
}

/* ------------------------------------------------------------------ */
/* header values                                                        */
/* ------------------------------------------------------------------ */

/* Length of the valid UTF-8 sequence at s (n bytes left), 0 if invalid. */
static size_t
utf8_len(const unsigned char *s, size_t n)
{
    size_t k, i;
    unsigned c = s[0];

    if (c < 0x80)
        return 1;
    if (c >= 0xC2 && c <= 0xDF)
        k = 2;
    else if (c >= 0xE0 && c <= 0xEF)
        k = 3;
    else if (c >= 0xF0 && c <= 0xF4)
        k = 4;
    else
        return 0;
    if (n < k)
        return 0;
    for (i = 1; i < k; i++)
        if ((s[i] & 0xC0) != 0x80)
            return 0;
    if ((c == 0xE0 && s[1] < 0xA0) || (c == 0xED && s[1] > 0x9F) ||
        (c == 0xF0 && s[1] < 0x90) || (c == 0xF4 && s[1] > 0x8F))
        return 0;
    return k;
}

/* Clean an outside value for a header: control characters (CR and LF
 * among them) dropped, invalid UTF-8 replaced by '?'. */
static void
clean_value(struct buf *b, const char *v)
{
    const unsigned char *s = (const unsigned char *)v;
    size_t n = strlen(v), i = 0, k;

    while (i < n) {
        if (s[i] < 0x20 || s[i] == 0x7F) {
            i++;
            continue;
        }
        k = utf8_len(s + i, n - i);
        if (k == 0) {
            buf_add(b, "?", 1);
            i++;
            continue;
        }
        buf_add(b, s + i, k);
        i += k;
    }
}

/* Append "Name: value\r\n"; value is cleaned and, when it is not plain
 * printable ASCII, could be mistaken for an encoded word, or does not fit
 * in one 998-octet line, written as folded RFC 2047 encoded words (UTF-8, base64). */
static void
header_text(struct buf *b, const char *name, const char *value)
{
    struct buf v = { 0 };
    const unsigned char *s;
    unsigned char enc[4 * ((EW_CHUNK + 2) / 3) + 1];
    size_t i, k, take, nlen = strlen(name);
    int plain = 1;

    clean_value(&v, value);
    if (v.oom) {
        b->oom = 1;
        goto out;
    }
    s = (const unsigned char *)(v.p ? v.p : "");
    for (i = 0; i < v.len; i++)
        if (s[i] < 0x20 || s[i] > 0x7E)
            plain = 0;
    if (strstr((const char *)s, "=?") != NULL ||
        nlen + 2 + v.len > LINE_MAX_OCTETS || (v.len > 0 && (s[0] == ' ' ||
        s[v.len - 1] == ' ')))
        plain = 0;
    buf_str(b, name);
    buf_add(b, ":", 1);
    if (plain || v.len == 0) {
        if (v.len > 0)
            buf_add(b, " ", 1);
        buf_add(b, s, v.len);
        buf_add(b, "\r\n", 2);
        goto out;
    }
    i = 0;
    while (i < v.len) {
        take = 0;
        while (i + take < v.len) {
            k = utf8_len(s + i + take, v.len - i - take);
            if (k == 0)
                k = 1;      /* cannot happen after clean_value */
            if (take + k > EW_CHUNK)
                break;
            take += k;
        }
        EVP_EncodeBlock(enc, s + i, (int)take);
        buf_str(b, i == 0 ? " " : "\r\n ");
        buf_fmt(b, "=?utf-8?B?%s?=", (const char *)enc);
        i += take;
    }
    buf_add(b, "\r\n", 2);
out:
    free(v.p);
}

/* Printable-ASCII rendering of an outside value for the text part: every
 * byte outside 0x20..0x7E becomes '?', at most max characters. */
static void
ascii_text(struct buf *b, const char *v, size_t max)
{
    size_t i, n = strlen(v);

    for (i = 0; i < n && i < max; i++) {
        unsigned char c = (unsigned char)v[i];

        buf_add(b, c >= 0x20 && c <= 0x7E ? &v[i] : "?", 1);
    }
    if (n > max)
        buf_str(b, "...");
}

/* [A-Za-z0-9._-], others '_'; no leading dot and no empty result.
 * dots: also no trailing or doubled dot (dot-atom for Message-ID). */
static void
safe_token(struct buf *b, const char *v, size_t max, int dotatom)
{
    size_t i, n = strlen(v), start = b->len;

    for (i = 0; i < n && i < max; i++) {
        char c = v[i];
        int ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
                 (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';

        if (c == '.' && (b->len == start ||
            (dotatom && b->p[b->len - 1] == '.') ||
            (dotatom && (i + 1 == n || i + 1 == max))))
            ok = 0;
        buf_add(b, ok ? &c : "_", 1);
    }
    if (b->len == start)
        buf_add(b, "_", 1);
}

/* An address as accepted here: 1..254 printable ASCII octets, one '@'
 * neither first nor last, none of space ( ) < > , ; " \ [ ]. */
static int
addr_ok(const char *a)
{
    size_t i, n;
    const char *at;

    if (a == NULL || (n = strlen(a)) == 0 || n > ADDR_MAX)
        return 0;
    for (i = 0; i < n; i++) {
        unsigned char c = (unsigned char)a[i];

        if (c <= 0x20 || c >= 0x7F || strchr("()<>,;:\"\\[]", c) != NULL)
            return 0;
    }
    at = strchr(a, '@');
    return at != NULL && at != a && at[1] != '\0' &&
           strchr(at + 1, '@') == NULL;
}

static const char *const wday[] = {
    "Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"
};
static const char *const month[] = {
    "Jan", "Feb", "Mar", "Apr", "May", "Jun",
    "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"
};

/* ------------------------------------------------------------------ */
/* S/MIME                                                               */
/* ------------------------------------------------------------------ */

/* The inner entity (multipart/mixed), CRLF line ends throughout. */
static int
build_inner(struct buf *b, const struct push_message *m, char *err,
            size_t errlen)
{
    unsigned char rnd[16], line[77];
    char bound[64], *p;
    struct buf text = { 0 }, fname = { 0 };
    size_t i, n;
    int rc = -1;

    if (RAND_bytes(rnd, sizeof rnd) != 1) {
        seterr(err, errlen, "boundary: %s", ossl_reason("RAND_bytes failed"));
        goto out;
    }
    p = bound + snprintf(bound, sizeof bound, "=_ecert_");
    for (i = 0; i < sizeof rnd; i++)
        p += snprintf(p, 3, "%02x", rnd[i]);

    safe_token(&fname, m->number, NAME_MAX_CHARS, 0);
    buf_str(&fname, ".xml");

    buf_str(&text, "This message carries the electronic SPS certificate ");
    ascii_text(&text, m->number, TEXT_MAX_CHARS);
    buf_fmt(&text, "\r\n(type %d, status %d, version %d), issued by ",
            m->type, m->status, m->version);
    ascii_text(&text, m->issuer, TEXT_MAX_CHARS);
    buf_str(&text, " for ");
    ascii_text(&text, m->dest, TEXT_MAX_CHARS);
    buf_str(&text, ".\r\nTracking number: ");
    ascii_text(&text, m->tracking, TEXT_MAX_CHARS);
    buf_str(&text, "\r\n\r\nThe attached file ");
    buf_add(&text, fname.p, fname.len);
    buf_str(&text, "\r\nis the certificate (SPSCertificate XML), exactly as "
            "received.\r\nThis message is signed by the eCert gateway "
            "(S/MIME); the signature\r\ncovers this text and the "
            "attachment.\r\n");
    if (text.oom || fname.oom) {
        seterr(err, errlen, "message: out of memory");
        goto out;
    }
    /* the boundary is random; all the same, never let the text hold it */
    if (strstr(text.p, bound) != NULL) {
        seterr(err, errlen, "message: boundary collision");
        goto out;
    }

    buf_fmt(b, "Content-Type: multipart/mixed; boundary=\"%s\"\r\n\r\n",
            bound);
    buf_fmt(b, "--%s\r\n", bound);
    buf_str(b, "Content-Type: text/plain; charset=utf-8\r\n"
            "Content-Transfer-Encoding: 7bit\r\n\r\n");
    buf_add(b, text.p, text.len);
    buf_fmt(b, "--%s\r\n", bound);
    buf_fmt(b, "Content-Type: application/xml; name=\"%s\"\r\n", fname.p);
    buf_fmt(b, "Content-Disposition: attachment; filename=\"%s\"\r\n",
            fname.p);
    buf_str(b, "Content-Transfer-Encoding: base64\r\n\r\n");
    for (i = 0; i < m->content_len; i += 57) {
        n = m->content_len - i < 57 ? m->content_len - i : 57;
        EVP_EncodeBlock(line, m->content + i, (int)n);
        buf_str(b, (const char *)line);
        buf_add(b, "\r\n", 2);
    }
    buf_fmt(b, "--%s--\r\n", bound);
    if (b->oom) {
        seterr(err, errlen, "message: out of memory");
        goto out;
    }
    rc = 0;
out:
    free(text.p);
    free(fname.p);
    return rc;
}

/* Append the part of an S/MIME output after its leading MIME-Version
 * header (the message has its own), lone LFs turned into CRLF. */
static void
add_smime_part(struct buf *b, const char *p, size_t n, int first)
{
    static const char mv[] = "MIME-Version:";
    const char *nl;

    if (first && n >= sizeof mv - 1 &&
        strncasecmp(p, mv, sizeof mv - 1) == 0 &&
        (nl = memchr(p, '\n', n)) != NULL) {
        n -= (size_t)(nl + 1 - p);
        p = nl + 1;
    }
    buf_add_crlf(b, p, n);
}

/* multipart/signed over inner, appended to b (Content-Type header and
 * body, CRLF).  Streaming: SMIME_write_CMS digests the inner entity as it
 * copies it out (binary, so unchanged) and then writes the signature;
 * the bytes signed are the bytes written. */
static int
sign_inner(const struct push_signer *s, const struct buf *inner,
           struct buf *b, char *err, size_t errlen)
{
    const int flags = CMS_DETACHED | CMS_BINARY | CMS_STREAM;
    CMS_ContentInfo *cms = NULL;
    BIO *in = NULL, *out = NULL;
    char *p, *at;
    long n;
    int rc = -1;

    cms = CMS_sign(NULL, NULL, s->chain, NULL, flags | CMS_PARTIAL);
    if (cms == NULL ||
        CMS_add1_signer(cms, s->cert, s->key, EVP_sha256(), flags) == NULL) {
        seterr(err, errlen, "sign: %s", ossl_reason("CMS setup failed"));
        goto out;
    }
    in = BIO_new_mem_buf(inner->p, (int)inner->len);
    out = BIO_new(BIO_s_mem());
    if (in == NULL || out == NULL ||
        SMIME_write_CMS(out, cms, in, flags) != 1) {
        seterr(err, errlen, "sign: %s", ossl_reason("SMIME_write_CMS failed"));
        goto out;
    }
    n = BIO_get_mem_data(out, &p);
    /* OpenSSL copies the inner entity verbatim in binary mode: only the
     * text around it is normalised, the signed bytes are left alone */
    at = n > 0 ? memmem(p, (size_t)n, inner->p, inner->len) : NULL;
    if (at == NULL) {
        seterr(err, errlen, "sign: signed content not found in S/MIME output");
        goto out;
    }
    add_smime_part(b, p, (size_t)(at - p), 1);
    buf_add(b, at, inner->len);
    buf_add_crlf(b, at + inner->len, (size_t)n - (size_t)(at - p) -
                 inner->len);
    if (b->oom) {
        seterr(err, errlen, "sign: out of memory");
        goto out;
    }
    rc = 0;
out:
    BIO_free(in);
    BIO_free(out);
    CMS_ContentInfo_free(cms);
    return rc;
}

/* application/pkcs7-mime enveloped-data of entity to rcpt, appended to b. */
static int
encrypt_entity(X509 *rcpt, const struct buf *entity, struct buf *b,
               char *err, size_t errlen)
{
    STACK_OF(X509) *rs = NULL;
    CMS_ContentInfo *cms = NULL;
    BIO *in = NULL, *out = NULL;
    char *p;
    long n;
    int rc = -1;

    rs = sk_X509_new_null();
    in = BIO_new_mem_buf(entity->p, (int)entity->len);
    out = BIO_new(BIO_s_mem());
    if (rs == NULL || in == NULL || out == NULL || !sk_X509_push(rs, rcpt)) {
        seterr(err, errlen, "encrypt: out of memory");
        goto out;
    }
    cms = CMS_encrypt(rs, in, EVP_aes_256_cbc(), CMS_BINARY);
    if (cms == NULL) {
        seterr(err, errlen, "encrypt: %s", ossl_reason("CMS_encrypt failed"));
        goto out;
    }
    if (SMIME_write_CMS(out, cms, NULL, CMS_BINARY) != 1) {
        seterr(err, errlen, "encrypt: %s",
               ossl_reason("SMIME_write_CMS failed"));
        goto out;
    }
    n = BIO_get_mem_data(out, &p);
    if (n <= 0) {
        seterr(err, errlen, "encrypt: empty S/MIME output");
        goto out;
    }
    add_smime_part(b, p, (size_t)n, 1);
    if (b->oom) {
        seterr(err, errlen, "encrypt: out of memory");
        goto out;
    }
    rc = 0;
out:
    sk_X509_free(rs);           /* rcpt belongs to the caller */
    BIO_free(in);
    BIO_free(out);
    CMS_ContentInfo_free(cms);
    return rc;
}

/* ------------------------------------------------------------------ */
/* the message                                                          */
/* ------------------------------------------------------------------ */

static int
check_message(const struct push_message *m, char *err, size_t errlen)
{
    size_t i;

    if (m->from_addr == NULL || m->msgid_domain == NULL ||
        m->tracking == NULL || m->partner == NULL || m->issuer == NULL ||
        m->dest == NULL || m->number == NULL) {
        seterr(err, errlen, "message: a required field is missing");
        return -1;
    }
    if (m->content == NULL || m->content_len == 0) {
        seterr(err, errlen, "message: no content");
        return -1;
    }
    if (m->content_len > (size_t)1 << 30) {
        seterr(err, errlen, "message: content too large (%zu bytes)",
               m->content_len);
        return -1;
    }
    if (!addr_ok(m->from_addr)) {
        seterr(err, errlen, "message: invalid sender address");
        return -1;
    }
    if (m->to_addrs == NULL || m->nto == 0) {
        seterr(err, errlen, "message: no recipient");
        return -1;
    }
    for (i = 0; i < m->nto; i++) {
        if (!addr_ok(m->to_addrs[i])) {
            seterr(err, errlen, "message: invalid recipient address #%zu",
                   i + 1);
            return -1;
        }
    }
    return 0;
}

static void
build_headers(struct buf *b, const struct push_message *m,
              const unsigned char *content_md)
{
    struct buf subj = { 0 };
    struct tm tm;
    size_t i, col;
    char hex[2 * 32 + 1];

    buf_fmt(b, "From: %s\r\n", m->from_addr);
    buf_str(b, "To: ");
    col = 4;
    for (i = 0; i < m->nto; i++) {
        size_t al = strlen(m->to_addrs[i]);

        if (i > 0) {
            if (col + 2 + al > 76) {
                buf_str(b, ",\r\n ");
                col = 1;
            } else {
                buf_str(b, ", ");
                col += 2;
            }
        }
        buf_str(b, m->to_addrs[i]);
        col += al;
    }
    buf_str(b, "\r\n");

    if (gmtime_r(&m->date, &tm) == NULL) {
        time_t zero = 0;

        gmtime_r(&zero, &tm);
    }
    buf_fmt(b, "Date: %s, %02d %s %04d %02d:%02d:%02d +0000\r\n",
            wday[tm.tm_wday % 7], tm.tm_mday, month[tm.tm_mon % 12],
            tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);

    buf_fmt(&subj, "SPS certificate %d %s from %s", m->type, m->number,
            m->issuer);
    header_text(b, "Subject", subj.oom ? "" : subj.p);
    if (subj.oom)
        b->oom = 1;
    free(subj.p);

    buf_str(b, "Message-ID: <");
    safe_token(b, m->tracking, ID_PART_MAX, 1);
    buf_add(b, ".", 1);
    safe_token(b, m->partner, ID_PART_MAX, 1);
    buf_add(b, "@", 1);
    safe_token(b, m->msgid_domain, ID_PART_MAX, 1);
    buf_str(b, ">\r\n");
    buf_str(b, "MIME-Version: 1.0\r\n");

    header_text(b, "X-ECert-Tracking", m->tracking);
    header_text(b, "X-ECert-Issuer", m->issuer);
    header_text(b, "X-ECert-Destination", m->dest);
    header_text(b, "X-ECert-Number", m->number);
    buf_fmt(b, "X-ECert-Type: %d\r\n", m->type);
    buf_fmt(b, "X-ECert-Status: %d\r\n", m->status);
    buf_fmt(b, "X-ECert-Version: %d\r\n", m->version);
    for (i = 0; i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", content_md[i]);
    buf_fmt(b, "X-ECert-SHA256: %s\r\n", hex);
}

int
push_build(const struct push_signer *s, X509 *recipient,
           const struct push_message *m, char **out, size_t *outlen,
           char *err, size_t errlen)
{
    struct buf msg = { 0 }, inner = { 0 }, signd = { 0 };
    unsigned char md[32];
    unsigned int mdlen = 0;
    int rc = -1;

    *out = NULL;
    *outlen = 0;
    ERR_clear_error();
    if (s == NULL || m == NULL) {
        seterr(err, errlen, "message: no signer");
        goto out;
    }
    if (check_message(m, err, errlen) != 0)
        goto out;
    if (EVP_Digest(m->content, m->content_len, md, &mdlen, EVP_sha256(),
                   NULL) != 1 || mdlen != sizeof md) {
        seterr(err, errlen, "digest: %s", ossl_reason("SHA-256 failed"));
        goto out;
    }

    build_headers(&msg, m, md);
    if (msg.oom) {
        seterr(err, errlen, "message: out of memory");
        goto out;
    }
    if (build_inner(&inner, m, err, errlen) != 0)
        goto out;
    if (inner.len > 0x7fffffff) {
        seterr(err, errlen, "message: content too large");
        goto out;
    }
    if (sign_inner(s, &inner, &signd, err, errlen) != 0)
        goto out;
    if (recipient == NULL) {
        buf_add(&msg, signd.p, signd.len);
    } else if (signd.len > 0x7fffffff ||
               encrypt_entity(recipient, &signd, &msg, err, errlen) != 0) {
        if (signd.len > 0x7fffffff)
            seterr(err, errlen, "message: content too large");
        goto out;
    }
    if (msg.oom) {
        seterr(err, errlen, "message: out of memory");
        goto out;
    }
    *out = msg.p;
    *outlen = msg.len;
    msg.p = NULL;
    rc = 0;
out:
    free(msg.p);
    free(inner.p);
    free(signd.p);
    ERR_clear_error();
    return rc;
}
