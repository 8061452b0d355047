/*
 * fuzz_mime.c - libFuzzer harness for push_build (gateway/push_mime.c):
 * the RFC 5322 / S/MIME message of one mail delivery, built from
 * fuzzed header fields and content.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * Input layout (all optional: missing bytes read as 0):
 *   byte 0      flags: bit 0 encrypt to the recipient certificate,
 *               bit 1 take the sender address from the input,
 *               bit 2 take the recipient addresses from the input,
 *               bits 3-4 number of recipients - 1 (1..4)
 *   bytes 1-9   lengths of: number, tracking, partner, issuer, dest,
 *               msgid domain, sender, recipient (each of the recipients
 *               uses this length), type/status/version selector
 *   bytes 10-17 date (time_t, little endian)
 *   bytes 18-23 type (int16), status (int16), version (int16)
 *   then the strings in that order (each as long as its length byte says,
 *   cut at the end of the input), then the rest: the content.
 * Fields not taken from the input are fixed valid values.  Strings are
 * NUL-terminated copies (an embedded NUL shortens them, as it would in
 * the store's TEXT columns).
 *
 * The signer (and a recipient certificate) are made once, in
 * LLVMFuzzerInitialize: throwaway EC P-256 keys, self-signed.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/x509.h>

#include "push.h"
#include "fuzz_common.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct push_signer *signer;
static X509 *recipient;

static void
free_globals(void)
{
    push_signer_free(signer);
    X509_free(recipient);
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    char *crt, *key, *rcrt, *rkey, err[512];

    (void)argc;
    (void)argv;
    crt = fuzz_path("signer.crt");
    key = fuzz_path("signer.key");
    rcrt = fuzz_path("recipient.crt");
    rkey = fuzz_path("recipient.key");
    fuzz_make_cert("fuzz signer", crt, key);
    fuzz_make_cert("fuzz recipient", rcrt, rkey);
    if (push_signer_load(crt, key, NULL, &signer, err, sizeof err) != 0)
        fuzz_die("signer: %s", err);
    if (push_recipient_load(rcrt, &recipient, err, sizeof err) != 0)
        fuzz_die("recipient: %s", err);
    free(crt);
    free(key);
    free(rcrt);
    free(rkey);
    atexit(free_globals);
    return 0;
}

struct reader {
    const uint8_t *p;
    size_t n;
};

static unsigned
get_u8(struct reader *r)
{
    unsigned v = 0;

    if (r->n > 0) {
        v = r->p[0];
        r->p++;
        r->n--;
    }
    return v;
}

/* A NUL-terminated copy of the next len bytes (fewer at the end). */
static char *
get_str(struct reader *r, size_t len)
{
    char *s;

    if (len > r->n)
        len = r->n;
    s = malloc(len + 1);
    if (s == NULL)
        abort();
    memcpy(s, r->p, len);
    s[len] = '\0';
    r->p += len;
    r->n -= len;
    return s;
}

enum { F_NUMBER, F_TRACKING, F_PARTNER, F_ISSUER, F_DEST, F_DOMAIN, F_FROM,
       F_TO, F_NLEN };

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const fixed[F_NLEN] = {
        "491412337BO", "ECG20240101-00000000000000a1", "ec-nppo", "BO",
        "EC", "gateway.invalid", "ecert@gateway.invalid",
        "ec-nppo@partner.invalid",
    };
    struct reader r = { data, size };
    struct push_message m;
    unsigned flags, len[F_NLEN + 1], nto, i;
    char *str[F_NLEN], *to_own[4], *out = NULL, err[512];
    const char *to[4];
    size_t outlen = 0;
    uint64_t date = 0;
    int16_t ints[3];

    flags = get_u8(&r);
    for (i = 0; i <= F_NLEN; i++)
        len[i] = get_u8(&r);
    for (i = 0; i < 8; i++)
        date |= (uint64_t)get_u8(&r) << (8 * i);
    for (i = 0; i < 3; i++) {
        unsigned lo = get_u8(&r), hi = get_u8(&r);

        ints[i] = (int16_t)(uint16_t)(lo | hi << 8);
    }
    nto = ((flags >> 3) & 3) + 1;

    memset(str, 0, sizeof str);
    memset(to_own, 0, sizeof to_own);
    for (i = 0; i < F_NLEN; i++) {
        if ((i == F_FROM && !(flags & 2)) || (i == F_TO && !(flags & 4)))
            continue;
        if (i == F_TO) {
            unsigned k;

            for (k = 0; k < nto; k++)
                to_own[k] = get_str(&r, len[F_TO]);
            continue;
        }
        str[i] = get_str(&r, len[i]);
    }

    memset(&m, 0, sizeof m);
    m.number = str[F_NUMBER];
    m.tracking = str[F_TRACKING];
    m.partner = str[F_PARTNER];
    m.issuer = str[F_ISSUER];
    m.dest = str[F_DEST];
    m.msgid_domain = str[F_DOMAIN];
    m.from_addr = (flags & 2) ? str[F_FROM] : fixed[F_FROM];
    for (i = 0; i < nto; i++)
        to[i] = (flags & 4) ? to_own[i] : fixed[F_TO];
    m.to_addrs = to;
    m.nto = nto;
    /* len[F_NLEN] picks full-range or typical type/status/version. */
    if (len[F_NLEN] & 1) {
        m.type = ints[0];
        m.status = ints[1];
        m.version = ints[2];
    } else {
        m.type = 851;
        m.status = 70;
        m.version = 1 + (ints[2] & 3);
    }
    if (len[F_NLEN] & 2)
        m.type = (int)((unsigned)ints[0] << 16 | (uint16_t)ints[1]);
    m.date = (time_t)date;
    m.content = r.p;
    m.content_len = r.n;

    if (push_build(signer, (flags & 1) ? recipient : NULL, &m, &out, &outlen,
                   err, sizeof err) == 0) {
        /* The promise: CRLF line ends only, lines <= 998 octets, NUL at
         * the end. */
        size_t col = 0, k;

        if (out == NULL || out[outlen] != '\0')
            abort();
        for (k = 0; k < outlen; k++) {
            if (out[k] == '\n' && (k == 0 || out[k - 1] != '\r'))
                abort();        /* bare LF */
            if (out[k] == '\r' && (k + 1 >= outlen || out[k + 1] != '\n'))
                abort();        /* bare CR */
            if (out[k] == '\n')
                col = 0;
            else if (out[k] != '\r' && ++col > 998)
                abort();        /* line too long */
        }
    }
    free(out);
    for (i = 0; i < F_NLEN; i++)
        free(str[i]);
    for (i = 0; i < 4; i++)
        free(to_own[i]);
    return 0;
}
