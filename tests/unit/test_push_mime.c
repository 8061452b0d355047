/*
 * test_push_mime.c - unit tests for gateway/push_mime.c (signer and
 * recipient loading, message building, S/MIME signing and encryption).
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * Run from the project root: the sample is read from
 * ../shared/samples/spscert.  A throwaway PKI (root, intermediate, signer,
 * an RSA and an EC recipient) is made with the openssl command in a
 * mkdtemp directory; messages are checked with `openssl cms`.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "push.h"

#define SAMPLES "../shared/samples/spscert/"
#define S_AGRO SAMPLES "agrocalidad-qa-BO-to-EC-491412337BO.xml"

#define T_20261124 ((time_t)1795514400)     /* Tue, 24 Nov 2026 10:00 UTC */
#define T_20270102 ((time_t)1798859045)     /* Sat, 02 Jan 2027 03:04:05 */

static char dir[64];
static struct push_signer *signer;
static X509 *rcpt_rsa, *rcpt_ec;
static unsigned char *agro;
static size_t agro_len;

static const char *const to2[] = { "ecert@agrocalidad.example",
                                   "backup@agrocalidad.example" };

/* ------------------------------------------------------------------ */
/* helpers                                                              */
/* ------------------------------------------------------------------ */

static int sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Run a shell command in the test directory; its exit status. */
static int
sh(const char *fmt, ...)
{
    char cmd[4096];
    int n, st;
    va_list ap;

    n = snprintf(cmd, sizeof cmd, "cd '%s' && ", dir);
    va_start(ap, fmt);
    vsnprintf(cmd + n, sizeof cmd - (size_t)n, fmt, ap);
    va_end(ap);
    st = system(cmd);
    if (st == -1 || !WIFEXITED(st))
        return -1;
    return WEXITSTATUS(st);
}

static char *
path(const char *name)
{
    static char p[4][256];
    static int k;

    k = (k + 1) % 4;
    snprintf(p[k], sizeof p[k], "%s/%s", dir, name);
    return p[k];
}

static unsigned char *
slurp(const char *file, size_t *len)
{
    FILE *f = fopen(file, "rb");
    unsigned char *buf;
    long n;

    assert_non_null(f);
    assert_int_equal(fseek(f, 0, SEEK_END), 0);
    n = ftell(f);
    assert_true(n >= 0);
    rewind(f);
    buf = malloc((size_t)n + 1);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
    buf[n] = '\0';
    fclose(f);
    *len = (size_t)n;
    return buf;
}

static void
spit(const char *file, const void *data, size_t len)
{
    FILE *f = fopen(file, "wb");

    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
}

static struct push_message
base_msg(const unsigned char *content, size_t len)
{
    struct push_message m = {
        .from_addr = "gateway@ecert.example",
        .to_addrs = to2,
        .nto = 2,
        .msgid_domain = "ecert.example",
        .tracking = "BO-2026-000123",
        .partner = "EC-agrocalidad",
        .issuer = "BO",
        .dest = "EC",
        .number = "491412337BO",
        .type = 851,
        .status = 70,
        .version = 1,
        .date = T_20261124,
        .content = content,
        .content_len = len,
    };
    return m;
}

static char *
build_ok(const struct push_message *m, X509 *r, size_t *len)
{
    char err[256] = "", *out = NULL;
    int rc = push_build(signer, r, m, &out, len, err, sizeof err);

    if (rc != 0)
        print_error("push_build: %s\n", err);
    assert_int_equal(rc, 0);
    assert_non_null(out);
    assert_int_equal(strlen(out), *len);
    return out;
}

/* Every line ends in CRLF (no lone CR or LF anywhere), none is longer
 * than 998 octets, the message ends with CRLF. */
static void
check_lines(const char *p, size_t n)
{
    size_t i, col = 0;

    assert_true(n >= 2);
    assert_memory_equal(p + n - 2, "\r\n", 2);
    for (i = 0; i < n; i++) {
        if (p[i] == '\r') {
            assert_true(i + 1 < n && p[i + 1] == '\n');
            assert_true(col <= 998);
            col = 0;
            i++;
        } else {
            assert_true(p[i] != '\n');
            col++;
        }
    }
}

static size_t
header_end(const char *msg)
{
    const char *e = strstr(msg, "\r\n\r\n");

    assert_non_null(e);
    return (size_t)(e - msg) + 2;
}

/* Count the top-level headers called name; the last one's unfolded value
 * into val (may be NULL). */
static int
header(const char *msg, const char *name, char *val, size_t vlen)
{
    size_t end = header_end(msg), nl = strlen(name), i = 0, o;
    int count = 0;

    while (i < end) {
        const char *line = msg + i;
        const char *eol = strstr(line, "\r\n");

        assert_non_null(eol);
        if (strncasecmp(line, name, nl) == 0 && line[nl] == ':') {
            const char *v = line + nl + 1;

            count++;
            while (*v == ' ')
                v++;
            o = 0;
            for (;;) {
                while (v < eol && o + 1 < vlen)
                    if (val)
                        val[o++] = *v++;
                    else
                        v++;
                if (eol[2] != ' ' && eol[2] != '\t')
                    break;
                v = eol + 2;        /* unfold: drop the CRLF only */
                eol = strstr(v, "\r\n");
            }
            if (val && vlen)
                val[o] = '\0';
        }
        i = (size_t)(strstr(line, "\r\n") - msg) + 2;
        while (i < end && (msg[i] == ' ' || msg[i] == '\t'))
            i = (size_t)(strstr(msg + i, "\r\n") - msg) + 2;
    }
    return count;
}

/* Decode a value made of RFC 2047 utf-8 B encoded words (or plain). */
static void
decode_words(const char *v, char *out, size_t outlen)
{
    const char *p = v, *q;
    unsigned char tmp[256];
    size_t o = 0;
    int n;

    if (strncmp(v, "=?utf-8?B?", 10) != 0) {
        snprintf(out, outlen, "%s", v);
        return;
    }
    while (*p) {
        while (*p == ' ')
            p++;
        if (*p == '\0')
            break;
        assert_int_equal(strncmp(p, "=?utf-8?B?", 10), 0);
        p += 10;
        q = strstr(p, "?=");
        assert_non_null(q);
        assert_true(q - p <= 75 - 12);
        assert_true((size_t)(q - p) < sizeof tmp);
        n = EVP_DecodeBlock(tmp, (const unsigned char *)p, (int)(q - p));
        assert_true(n >= 0);
        if (q - p >= 1 && q[-1] == '=')
            n--;
        if (q - p >= 2 && q[-2] == '=')
            n--;
        assert_true(o + (size_t)n < outlen);
        memcpy(out + o, tmp, (size_t)n);
        o += (size_t)n;
        p = q + 2;
    }
    out[o] = '\0';
}

/* The base64 attachment (the part with filename=) of a verified inner
 * entity, decoded. */
static unsigned char *
attachment(const char *inner, size_t *len, char *fname, size_t fnlen)
{
    const char *p = strstr(inner, "filename=\""), *q;
    char *b64;
    unsigned char *dec;
    size_t n = 0;
    int d;

    assert_non_null(p);
    q = strchr(p + 10, '"');
    assert_non_null(q);
    snprintf(fname, fnlen, "%.*s", (int)(q - p - 10), p + 10);
    q = strstr(p, "\r\n\r\n");
    assert_non_null(q);
    q += 4;
    b64 = malloc(strlen(q) + 1);
    assert_non_null(b64);
    while (*q && !(q[0] == '-' && q[1] == '-')) {
        const char *eol = strstr(q, "\r\n");

        assert_non_null(eol);
        assert_true(eol - q <= 76);
        memcpy(b64 + n, q, (size_t)(eol - q));
        n += (size_t)(eol - q);
        q = eol + 2;
    }
    b64[n] = '\0';
    dec = malloc(n / 4 * 3 + 1);
    assert_non_null(dec);
    d = EVP_DecodeBlock(dec, (unsigned char *)b64, (int)n);
    assert_true(d >= 0);
    if (n >= 1 && b64[n - 1] == '=')
        d--;
    if (n >= 2 && b64[n - 2] == '=')
        d--;
    free(b64);
    *len = (size_t)d;
    return dec;
}

/* Verify the S/MIME signature of file with openssl (trusting only the
 * root: the intermediate must travel in the message), then check that the
 * attachment is byte for byte the content.  The inner entity is returned
 * (malloc'd) for further checks. */
static char *
verify_file(const char *file, const unsigned char *content, size_t len,
            const char *want_fname)
{
    unsigned char *att;
    char *inner, fname[256];
    size_t alen, ilen;

    unlink(path("inner.txt"));
    assert_int_equal(sh("openssl cms -verify -CAfile ca.crt -in '%s' "
                        "-out inner.txt 2>/dev/null", file), 0);
    inner = (char *)slurp(path("inner.txt"), &ilen);
    check_lines(inner, ilen);
    assert_non_null(strstr(inner, "Content-Type: multipart/mixed; "));
    assert_non_null(strstr(inner, "Content-Type: text/plain; "
                                  "charset=utf-8\r\n"));
    assert_non_null(strstr(inner, "Content-Type: application/xml; name="));
    assert_non_null(strstr(inner, "Content-Transfer-Encoding: base64\r\n"));
    att = attachment(inner, &alen, fname, sizeof fname);
    assert_int_equal(alen, len);
    assert_memory_equal(att, content, len);
    if (want_fname)
        assert_string_equal(fname, want_fname);
    free(att);
    return inner;
}

static char *
verify_msg(const char *msg, size_t n, const unsigned char *content,
           size_t len, const char *want_fname)
{
    spit(path("msg.eml"), msg, n);
    return verify_file(path("msg.eml"), content, len, want_fname);
}

static void
sha256_hex(const unsigned char *p, size_t n, char hex[65])
{
    unsigned char md[32];
    unsigned int ml;
    int i;

    assert_int_equal(EVP_Digest(p, n, md, &ml, EVP_sha256(), NULL), 1);
    for (i = 0; i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", md[i]);
}

/* The checks every message must pass: lines, headers, signature. */
static void
check_signed(const struct push_message *m, const char *want_fname)
{
    char *msg, *inner, v[1024], hex[65];
    size_t n;

    msg = build_ok(m, NULL, &n);
    check_lines(msg, n);
    assert_int_equal(header(msg, "MIME-Version", v, sizeof v), 1);
    assert_string_equal(v, "1.0");
    assert_int_equal(header(msg, "Content-Type", v, sizeof v), 1);
    assert_non_null(strstr(v, "multipart/signed"));
    assert_non_null(strstr(v, "micalg=\"sha-256\""));
    assert_non_null(strstr(v, "application/pkcs7-signature"));
    assert_int_equal(header(msg, "From", v, sizeof v), 1);
    assert_string_equal(v, m->from_addr);
    assert_int_equal(header(msg, "X-ECert-SHA256", v, sizeof v), 1);
    sha256_hex(m->content, m->content_len, hex);
    assert_string_equal(v, hex);
    inner = verify_msg(msg, n, m->content, m->content_len, want_fname);
    free(inner);
    free(msg);
}

/* ------------------------------------------------------------------ */
/* setup                                                                */
/* ------------------------------------------------------------------ */

static const char cnf[] =
    "[req]\n"
    "distinguished_name = dn\n"
    "[dn]\n"
    "[v_ca]\n"
    "basicConstraints = critical,CA:TRUE\n"
    "keyUsage = critical,keyCertSign,cRLSign\n"
    "subjectKeyIdentifier = hash\n"
    "[v_sign]\n"
    "basicConstraints = CA:FALSE\n"
    "keyUsage = critical,digitalSignature,nonRepudiation\n"
    "extendedKeyUsage = emailProtection\n"
    "subjectAltName = email:gateway@ecert.example\n"
    "[v_rsa]\n"
    "basicConstraints = CA:FALSE\n"
    "keyUsage = critical,keyEncipherment\n"
    "extendedKeyUsage = emailProtection\n"
    "[v_ec]\n"
    "basicConstraints = CA:FALSE\n"
    "keyUsage = critical,keyAgreement\n"
    "extendedKeyUsage = emailProtection\n";

static int
setup(void **state)
{
    char err[512];

    (void)state;
    snprintf(dir, sizeof dir, "/tmp/test_push_mime.XXXXXX");
    if (mkdtemp(dir) == NULL)
        return -1;
    spit(path("t.cnf"), cnf, sizeof cnf - 1);
#define Q " >/dev/null 2>&1"
#define EC "-newkey ec -pkeyopt ec_paramgen_curve:P-256"
    if (sh("openssl req -x509 -new " EC " -nodes -keyout ca.key -out ca.crt "
           "-days 2 -subj '/CN=Test Root' -config t.cnf -extensions v_ca" Q)
        || sh("openssl req -new " EC " -nodes -keyout int.key -out int.csr "
              "-subj '/CN=Test Intermediate' -config t.cnf" Q)
        || sh("openssl x509 -req -in int.csr -CA ca.crt -CAkey ca.key "
              "-set_serial 2 -days 2 -out int.crt -extfile t.cnf "
              "-extensions v_ca" Q)
        || sh("openssl req -new -newkey rsa:2048 -nodes -keyout signer.key "
              "-out signer.csr -subj '/CN=eCert gateway' -config t.cnf" Q)
        || sh("openssl x509 -req -in signer.csr -CA int.crt -CAkey int.key "
              "-set_serial 3 -days 2 -out signer.crt -extfile t.cnf "
              "-extensions v_sign" Q)
        || sh("openssl req -new -newkey rsa:2048 -nodes -keyout rsa.key "
              "-out rsa.csr -subj '/CN=RSA partner' -config t.cnf" Q)
        || sh("openssl x509 -req -in rsa.csr -CA ca.crt -CAkey ca.key "
              "-set_serial 4 -days 2 -out rsa.crt -extfile t.cnf "
              "-extensions v_rsa" Q)
        || sh("openssl req -new " EC " -nodes -keyout ec.key -out ec.csr "
              "-subj '/CN=EC partner' -config t.cnf" Q)
        || sh("openssl x509 -req -in ec.csr -CA ca.crt -CAkey ca.key "
              "-set_serial 5 -days 2 -out ec.crt -extfile t.cnf "
              "-extensions v_ec" Q)
        || sh("openssl genpkey -algorithm ed25519 -out ed.key" Q)
        || sh("openssl req -x509 -new -key ed.key -out ed.crt -days 2 "
              "-subj '/CN=ed' -config t.cnf" Q)
        || sh("openssl pkey -in signer.key -aes256 -passout pass:secret "
              "-out signer-enc.key" Q)
        || sh("cat signer.crt int.crt > fullchain.crt")) {
        fprintf(stderr, "setup: openssl failed in %s\n", dir);
        return -1;
    }
#undef Q
#undef EC
    if (push_signer_load(path("signer.crt"), path("signer.key"),
                         path("int.crt"), &signer, err, sizeof err) != 0 ||
        push_recipient_load(path("rsa.crt"), &rcpt_rsa, err,
                            sizeof err) != 0 ||
        push_recipient_load(path("ec.crt"), &rcpt_ec, err, sizeof err) != 0) {
        fprintf(stderr, "setup: %s\n", err);
        return -1;
    }
    agro = slurp(S_AGRO, &agro_len);
    return 0;
}

static int
teardown(void **state)
{
    (void)state;
    push_signer_free(signer);
    X509_free(rcpt_rsa);
    X509_free(rcpt_ec);
    free(agro);
    if (dir[0] != '\0' && getenv("KEEP_TMP") == NULL)
        sh("cd / && rm -rf '%s'", dir);
    return 0;
}

/* ------------------------------------------------------------------ */
/* tests                                                                */
/* ------------------------------------------------------------------ */

static void
test_signer_load_errors(void **state)
{
    struct push_signer *s = (struct push_signer *)1;
    X509 *x = (X509 *)1;
    char err[512];

    (void)state;
    /* missing files: each names the file */
    assert_int_equal(push_signer_load(path("nope.crt"), path("signer.key"),
                                      NULL, &s, err, sizeof err), -1);
    assert_null(s);
    assert_non_null(strstr(err, "nope.crt"));
    assert_non_null(strstr(err, "No such file"));
    assert_int_equal(push_signer_load(path("signer.crt"), path("nope.key"),
                                      NULL, &s, err, sizeof err), -1);
    assert_non_null(strstr(err, "nope.key"));
    assert_int_equal(push_signer_load(path("signer.crt"), path("signer.key"),
                                      path("nope-chain.crt"), &s, err,
                                      sizeof err), -1);
    assert_non_null(strstr(err, "nope-chain.crt"));

    /* key of another certificate */
    assert_int_equal(push_signer_load(path("signer.crt"), path("rsa.key"),
                                      NULL, &s, err, sizeof err), -1);
    assert_null(s);
    assert_non_null(strstr(err, "rsa.key"));
    assert_non_null(strstr(err, "does not match"));
    assert_non_null(strstr(err, "signer.crt"));
    assert_null(strstr(err, "PRIVATE KEY"));

    /* a key where the certificate should be, and vice versa */
    assert_int_equal(push_signer_load(path("signer.key"), path("signer.key"),
                                      NULL, &s, err, sizeof err), -1);
    assert_non_null(strstr(err, "no certificate"));
    assert_int_equal(push_signer_load(path("signer.crt"), path("signer.crt"),
                                      NULL, &s, err, sizeof err), -1);
    assert_non_null(strstr(err, "signer.crt"));
    assert_null(s);

    /* an encrypted key is refused, without prompting */
    assert_int_equal(push_signer_load(path("signer.crt"),
                                      path("signer-enc.key"), NULL, &s, err,
                                      sizeof err), -1);
    assert_non_null(strstr(err, "signer-enc.key"));
    assert_null(strstr(err, "secret"));

    /* an empty chain file */
    spit(path("empty.crt"), "", 0);
    assert_int_equal(push_signer_load(path("signer.crt"), path("signer.key"),
                                      path("empty.crt"), &s, err, sizeof err),
                     -1);
    assert_non_null(strstr(err, "empty.crt"));

    /* good ones: with a chain file, and a full-chain certificate file */
    assert_int_equal(push_signer_load(path("signer.crt"), path("signer.key"),
                                      path("int.crt"), &s, err, sizeof err),
                     0);
    push_signer_free(s);
    assert_int_equal(push_signer_load(path("fullchain.crt"),
                                      path("signer.key"), NULL, &s, err,
                                      sizeof err), 0);
    push_signer_free(s);
    push_signer_free(NULL);

    /* recipients */
    assert_int_equal(push_recipient_load(path("nope.crt"), &x, err,
                                         sizeof err), -1);
    assert_null(x);
    assert_non_null(strstr(err, "nope.crt"));
    assert_int_equal(push_recipient_load(path("rsa.key"), &x, err,
                                         sizeof err), -1);
    assert_non_null(strstr(err, "no certificate"));
    assert_int_equal(push_recipient_load(path("ed.crt"), &x, err,
                                         sizeof err), -1);
    assert_non_null(strstr(err, "ED25519"));
}

/* A signer without its intermediate: the message does not verify against
 * the root alone, so the chain in the message is what makes it work. */
static void
test_chain_needed(void **state)
{
    struct push_signer *s = NULL;
    struct push_message m = base_msg(agro, agro_len);
    char err[256], *out = NULL;
    size_t n;

    (void)state;
    assert_int_equal(push_signer_load(path("signer.crt"), path("signer.key"),
                                      NULL, &s, err, sizeof err), 0);
    assert_int_equal(push_build(s, NULL, &m, &out, &n, err, sizeof err), 0);
    spit(path("nochain.eml"), out, n);
    assert_int_not_equal(sh("openssl cms -verify -CAfile ca.crt -in "
                            "nochain.eml -out /dev/null 2>/dev/null"), 0);
    assert_int_equal(sh("cat ca.crt int.crt > both.crt && openssl cms "
                        "-verify -CAfile both.crt -in nochain.eml -out "
                        "/dev/null 2>/dev/null"), 0);
    free(out);
    push_signer_free(s);
}

static void
test_sign_sample(void **state)
{
    struct push_message m = base_msg(agro, agro_len);
    char *msg, *inner, v[1024];
    size_t n;

    (void)state;
    /* the sample is UTF-8 with non-ASCII characters */
    assert_true(memchr(agro, 0xC3, agro_len) != NULL);
    check_signed(&m, "491412337BO.xml");

    msg = build_ok(&m, NULL, &n);
    assert_int_equal(header(msg, "Date", v, sizeof v), 1);
    assert_string_equal(v, "Tue, 24 Nov 2026 10:00:00 +0000");
    assert_int_equal(header(msg, "To", v, sizeof v), 1);
    assert_string_equal(v, "ecert@agrocalidad.example, "
                           "backup@agrocalidad.example");
    assert_int_equal(header(msg, "Subject", v, sizeof v), 1);
    assert_string_equal(v, "SPS certificate 851 491412337BO from BO");
    assert_int_equal(header(msg, "Message-ID", v, sizeof v), 1);
    assert_string_equal(v, "<BO-2026-000123.EC-agrocalidad@ecert.example>");
    assert_int_equal(header(msg, "X-ECert-Tracking", v, sizeof v), 1);
    assert_string_equal(v, "BO-2026-000123");
    assert_int_equal(header(msg, "X-ECert-Issuer", v, sizeof v), 1);
    assert_string_equal(v, "BO");
    assert_int_equal(header(msg, "X-ECert-Destination", v, sizeof v), 1);
    assert_string_equal(v, "EC");
    assert_int_equal(header(msg, "X-ECert-Number", v, sizeof v), 1);
    assert_string_equal(v, "491412337BO");
    assert_int_equal(header(msg, "X-ECert-Type", v, sizeof v), 1);
    assert_string_equal(v, "851");
    assert_int_equal(header(msg, "X-ECert-Status", v, sizeof v), 1);
    assert_string_equal(v, "70");
    assert_int_equal(header(msg, "X-ECert-Version", v, sizeof v), 1);
    assert_string_equal(v, "1");

    /* the text part says what this is */
    inner = verify_msg(msg, n, agro, agro_len, NULL);
    assert_non_null(strstr(inner, "491412337BO"));
    assert_non_null(strstr(inner, "Tracking number: BO-2026-000123\r\n"));
    assert_non_null(strstr(inner, "signed by the eCert gateway"));
    free(inner);
    free(msg);
}

static void
test_sign_crlf_content(void **state)
{
    unsigned char *crlf = malloc(2 * agro_len);
    struct push_message m;
    size_t i, n = 0;

    (void)state;
    assert_non_null(crlf);
    for (i = 0; i < agro_len; i++) {
        if (agro[i] == '\n' && (i == 0 || agro[i - 1] != '\r'))
            crlf[n++] = '\r';
        crlf[n++] = agro[i];
    }
    assert_true(n > agro_len);
    m = base_msg(crlf, n);
    check_signed(&m, "491412337BO.xml");
    free(crlf);
}

static void
test_sign_binary_content(void **state)
{
    unsigned char bin[1000];
    struct push_message m;
    size_t i;

    (void)state;
    for (i = 0; i < sizeof bin; i++)
        bin[i] = (unsigned char)(i * 37 + 11);
    bin[0] = 0x00;
    bin[1] = 0xFF;
    bin[2] = '\r';
    bin[3] = 'x';
    bin[4] = '\n';
    bin[5] = '\n';
    bin[sizeof bin - 1] = 0x00;
    m = base_msg(bin, sizeof bin);
    check_signed(&m, NULL);
    /* lengths around the 57-byte line and 3-byte group edges */
    for (i = 1; i <= 115; i += 19) {
        m = base_msg(bin, i);
        check_signed(&m, NULL);
    }
}

/* Changing one byte of the signed part makes verification fail. */
static void
test_tamper(void **state)
{
    struct push_message m = base_msg(agro, agro_len);
    char *msg, *p, orig;
    size_t n;

    (void)state;
    msg = build_ok(&m, NULL, &n);
    spit(path("ok.eml"), msg, n);
    assert_int_equal(sh("openssl cms -verify -CAfile ca.crt -in ok.eml "
                        "-out /dev/null 2>/dev/null"), 0);

    /* a base64 character of the attachment */
    p = strstr(msg, "filename=\"491412337BO.xml\"");
    assert_non_null(p);
    p = strstr(p, "\r\n\r\n");
    assert_non_null(p);
    p += 4 + 100;
    orig = *p;
    *p = orig == 'A' ? 'B' : 'A';
    spit(path("bad1.eml"), msg, n);
    assert_int_not_equal(sh("openssl cms -verify -CAfile ca.crt -in "
                            "bad1.eml -out /dev/null 2>/dev/null"), 0);
    *p = orig;

    /* a character of the text part */
    p = strstr(msg, "Tracking number:");
    assert_non_null(p);
    *p = 't';
    spit(path("bad2.eml"), msg, n);
    assert_int_not_equal(sh("openssl cms -verify -CAfile ca.crt -in "
                            "bad2.eml -out /dev/null 2>/dev/null"), 0);
    *p = 'T';

    /* restored: verifies again */
    spit(path("ok2.eml"), msg, n);
    assert_int_equal(sh("openssl cms -verify -CAfile ca.crt -in ok2.eml "
                        "-out /dev/null 2>/dev/null"), 0);
    free(msg);
}

static void
encrypted(X509 *r, const char *name, const unsigned char *content,
          size_t len)
{
    struct push_message m = base_msg(content, len);
    char *msg, *inner, *dec, v[1024];
    size_t n, dn;

    msg = build_ok(&m, r, &n);
    check_lines(msg, n);
    assert_int_equal(header(msg, "MIME-Version", v, sizeof v), 1);
    assert_int_equal(header(msg, "Content-Type", v, sizeof v), 1);
    assert_non_null(strstr(v, "application/pkcs7-mime"));
    assert_non_null(strstr(v, "smime-type=enveloped-data"));
    assert_int_equal(header(msg, "Subject", v, sizeof v), 1);
    assert_string_equal(v, "SPS certificate 851 491412337BO from BO");
    /* nothing readable of the content outside */
    assert_null(strstr(msg, "multipart/signed"));
    assert_null(strstr(msg, "SPSCertificate"));
    spit(path("enc.eml"), msg, n);
    unlink(path("dec.eml"));
    assert_int_equal(sh("openssl cms -decrypt -recip %s.crt -inkey %s.key "
                        "-in enc.eml -out dec.eml 2>/dev/null", name, name),
                     0);
    dec = (char *)slurp(path("dec.eml"), &dn);
    check_lines(dec, dn);
    assert_int_equal(strncmp(dec, "Content-Type: multipart/signed", 30), 0);
    assert_null(strstr(dec, "MIME-Version"));
    free(dec);
    inner = verify_file(path("dec.eml"), content, len, "491412337BO.xml");
    free(inner);
    /* the other recipient's key cannot open it */
    assert_int_not_equal(sh("openssl cms -decrypt -recip %s.crt -inkey "
                            "%s.key -in enc.eml -out /dev/null 2>/dev/null",
                            r == rcpt_ec ? "rsa" : "ec",
                            r == rcpt_ec ? "rsa" : "ec"), 0);
    free(msg);
}

static void
test_encrypt_ec(void **state)
{
    unsigned char bin[300];
    size_t i;

    (void)state;
    encrypted(rcpt_ec, "ec", agro, agro_len);
    for (i = 0; i < sizeof bin; i++)
        bin[i] = (unsigned char)(255 - i);
    encrypted(rcpt_ec, "ec", bin, sizeof bin);
}

static void
test_encrypt_rsa(void **state)
{
    (void)state;
    encrypted(rcpt_rsa, "rsa", agro, agro_len);
}

/* Same tracking + partner: same From/To/Subject/Message-ID whatever the
 * date; another partner: another id. */
static void
test_resend_same_id(void **state)
{
    struct push_message m = base_msg(agro, agro_len);
    const char *hs[] = { "From", "To", "Subject", "Message-ID" };
    char *a, *b, *c, va[1024], vb[1024];
    size_t na, nb, nc, i;

    (void)state;
    a = build_ok(&m, NULL, &na);
    m.date = T_20270102;
    b = build_ok(&m, rcpt_ec, &nb);
    for (i = 0; i < sizeof hs / sizeof hs[0]; i++) {
        assert_int_equal(header(a, hs[i], va, sizeof va), 1);
        assert_int_equal(header(b, hs[i], vb, sizeof vb), 1);
        assert_string_equal(va, vb);
    }
    header(b, "Date", vb, sizeof vb);
    assert_string_equal(vb, "Sat, 02 Jan 2027 03:04:05 +0000");

    /* characters outside [A-Za-z0-9._-] are replaced in the id */
    m.tracking = "BO/2026 <7>";
    m.partner = "..ec@agro..";
    c = build_ok(&m, NULL, &nc);
    header(c, "Message-ID", va, sizeof va);
    assert_string_equal(va, "<BO_2026__7_._.ec_agro._@ecert.example>");
    free(a);
    free(b);
    free(c);
}

static int
count_lines_starting(const char *msg, const char *prefix)
{
    const char *p = msg;
    int n = 0;

    while (p != NULL) {
        if (strncasecmp(p, prefix, strlen(prefix)) == 0)
            n++;
        p = strstr(p, "\r\n");
        if (p)
            p += 2;
    }
    return n;
}

static void
test_header_injection(void **state)
{
    struct push_message m = base_msg(agro, agro_len);
    char *msg, v[1024], d[1024];
    size_t n;

    (void)state;
    m.number = "491\r\nBcc: x@y";
    m.issuer = "BO\nX-Evil: 1";
    m.dest = "EC\r";
    m.tracking = "T1\r\nCc: z@y";
    msg = build_ok(&m, NULL, &n);
    check_lines(msg, n);
    assert_int_equal(count_lines_starting(msg, "Bcc:"), 0);
    assert_int_equal(count_lines_starting(msg, "Cc:"), 0);
    assert_int_equal(count_lines_starting(msg, "X-Evil:"), 0);
    assert_int_equal(header(msg, "X-ECert-Number", v, sizeof v), 1);
    assert_string_equal(v, "491Bcc: x@y");
    assert_int_equal(header(msg, "Subject", v, sizeof v), 1);
    assert_string_equal(v, "SPS certificate 851 491Bcc: x@y from BOX-Evil: 1");
    assert_int_equal(header(msg, "X-ECert-Destination", v, sizeof v), 1);
    assert_string_equal(v, "EC");
    free(verify_msg(msg, n, agro, agro_len, "491__Bcc__x_y.xml"));
    free(msg);

    /* a non-ASCII number: encoded words in the headers, '_' in the name */
    m = base_msg(agro, agro_len);
    m.number = "N\xc2\xba 491/2026 \xc3\xb1";
    msg = build_ok(&m, NULL, &n);
    check_lines(msg, n);
    assert_int_equal(header(msg, "Subject", v, sizeof v), 1);
    assert_int_equal(strncmp(v, "=?utf-8?B?", 10), 0);
    decode_words(v, d, sizeof d);
    assert_string_equal(d, "SPS certificate 851 N\xc2\xba 491/2026 "
                           "\xc3\xb1 from BO");
    assert_int_equal(header(msg, "X-ECert-Number", v, sizeof v), 1);
    decode_words(v, d, sizeof d);
    assert_string_equal(d, "N\xc2\xba 491/2026 \xc3\xb1");
    free(verify_msg(msg, n, agro, agro_len, "N___491_2026___.xml"));
    free(msg);

    /* invalid UTF-8 and something looking like an encoded word */
    m.number = "A\xff\xfe=?x?=";
    msg = build_ok(&m, NULL, &n);
    assert_int_equal(header(msg, "X-ECert-Number", v, sizeof v), 1);
    decode_words(v, d, sizeof d);
    assert_string_equal(d, "A?" "?=?x?=");
    free(msg);
}

static void
test_long_values(void **state)
{
    struct push_message m = base_msg(agro, agro_len);
    const char *to[60];
    char addrs[60][40], *msg, *big, *v, *d, *p;
    size_t n, i;

    (void)state;
    big = malloc(3001);
    v = malloc(20000);
    d = malloc(20000);
    assert_non_null(big);
    assert_non_null(v);
    assert_non_null(d);
    for (i = 0; i < 3000; i++)
        big[i] = (char)('A' + i % 26);
    big[3000] = '\0';
    m.number = big;
    m.tracking = big;
    for (i = 0; i < 60; i++) {
        snprintf(addrs[i], sizeof addrs[i], "partner%02zu@agro.example", i);
        to[i] = addrs[i];
    }
    m.to_addrs = to;
    m.nto = 60;
    msg = build_ok(&m, NULL, &n);
    check_lines(msg, n);
    assert_int_equal(header(msg, "X-ECert-Number", v, 20000), 1);
    decode_words(v, d, 20000);
    assert_string_equal(d, big);
    assert_int_equal(header(msg, "To", v, 20000), 1);
    for (i = 0, p = v; i < 60; i++) {
        p = strstr(p, addrs[i]);
        assert_non_null(p);
    }
    /* folded: the To header spans several short lines */
    assert_true(count_lines_starting(msg, " partner") > 10);
    free(verify_msg(msg, n, agro, agro_len, NULL));
    free(msg);
    free(big);
    free(v);
    free(d);
}

static void
test_bad_input(void **state)
{
    struct push_message m;
    const char *bad[] = { "a b@x.example", "a@x.example\r\nBcc: y@z",
                          "<a@x.example>", "a@x.example>", "a@x\n",
                          "noat", "@x.example", "a@", "a@b@c", "a,b@x",
                          "", "\xc3\xa4@x.example" };
    const char *one[1];
    char err[256], *out = (char *)1;
    size_t n = 1, i;

    (void)state;
    for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        m = base_msg(agro, agro_len);
        m.from_addr = bad[i];
        assert_int_equal(push_build(signer, NULL, &m, &out, &n, err,
                                    sizeof err), -1);
        assert_null(out);
        assert_int_equal(n, 0);
        assert_non_null(strstr(err, "sender"));
        m = base_msg(agro, agro_len);
        one[0] = bad[i];
        m.to_addrs = one;
        m.nto = 1;
        assert_int_equal(push_build(signer, NULL, &m, &out, &n, err,
                                    sizeof err), -1);
        assert_non_null(strstr(err, "recipient"));
    }
    m = base_msg(agro, agro_len);
    m.nto = 0;
    assert_int_equal(push_build(signer, NULL, &m, &out, &n, err,
                                sizeof err), -1);
    m = base_msg(agro, agro_len);
    m.number = NULL;
    assert_int_equal(push_build(signer, NULL, &m, &out, &n, err,
                                sizeof err), -1);
    m = base_msg(NULL, 0);
    assert_int_equal(push_build(signer, NULL, &m, &out, &n, err,
                                sizeof err), -1);
    assert_null(out);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_signer_load_errors),
        cmocka_unit_test(test_chain_needed),
        cmocka_unit_test(test_sign_sample),
        cmocka_unit_test(test_sign_crlf_content),
        cmocka_unit_test(test_sign_binary_content),
        cmocka_unit_test(test_tamper),
        cmocka_unit_test(test_encrypt_ec),
        cmocka_unit_test(test_encrypt_rsa),
        cmocka_unit_test(test_resend_same_id),
        cmocka_unit_test(test_header_injection),
        cmocka_unit_test(test_long_values),
        cmocka_unit_test(test_bad_input),
    };

    return cmocka_run_group_tests(tests, setup, teardown);
}
