/*
 * test_sps.c - unit tests for gateway/sps.c (content decoding, parsing,
 * schema validation, header comparison).
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * Run from the project root: the schema is read from wsdl/spscert and the
 * samples from ../shared/samples/spscert.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <iconv.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include <libxml/parser.h>
#include <openssl/evp.h>

#include "sps.h"

#define SCHEMA_DIR "wsdl/spscert"
#define SAMPLES "../shared/samples/spscert/"
#define S_AGRO SAMPLES "agrocalidad-qa-BO-to-EC-491412337BO.xml"
#define S_TMPL SAMPLES "sgcan-intercom-template.xml"
#define S_ANNO SAMPLES "sgcan-intercom-template-annotated.xml"
#define S_SIGN SAMPLES "sgcan-intercom-template-xmldsig-signed.xml"
#define S_MATT SAMPLES "mattilsynet-test-SPSCertificateContent.xml"

#define RSM "urn:un:unece:uncefact:data:standard:SPSCertificate:17"

static struct sps_schema *schema;
static const struct sps_limits limits = { 64, 4u << 20 };

/* ------------------------------------------------------------------ */
/* helpers                                                              */
/* ------------------------------------------------------------------ */

static unsigned char *
slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    unsigned char *buf = NULL;
    long n;

    assert_non_null(f);
    assert_int_equal(fseek(f, 0, SEEK_END), 0);
    n = ftell(f);
    assert_true(n > 0);
    rewind(f);
    buf = malloc((size_t)n + 1);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
    buf[n] = '\0';
    fclose(f);
    *len = (size_t)n;
    return buf;
}

static char *
b64(const unsigned char *in, size_t len, int wrap)
{
    size_t n = 4 * ((len + 2) / 3);
    char *flat = malloc(n + 1), *out;
    size_t i, o = 0;

    assert_non_null(flat);
    assert_int_equal(EVP_EncodeBlock((unsigned char *)flat, in, (int)len),
                     (int)n);
    if (!wrap)
        return flat;
    /* MIME style: CRLF every 76 characters, plus white space around. */
    out = malloc(n + 2 * (n / 76 + 1) + 8);
    assert_non_null(out);
    out[o++] = '\n';
    out[o++] = ' ';
    for (i = 0; i < n; i++) {
        if (i > 0 && i % 76 == 0) {
            out[o++] = '\r';
            out[o++] = '\n';
        }
        out[o++] = flat[i];
    }
    out[o++] = '\n';
    out[o] = '\0';
    free(flat);
    return out;
}

static unsigned char *
conv(const char *to, const unsigned char *in, size_t len, size_t *outlen)
{
    iconv_t cd = iconv_open(to, "UTF-8");
    size_t cap = 4 * len + 8, left = cap, inleft = len;
    unsigned char *out = malloc(cap);
    char *ip = (char *)in, *op = (char *)out;

    assert_true(cd != (iconv_t)-1);
    assert_non_null(out);
    assert_true(iconv(cd, &ip, &inleft, &op, &left) != (size_t)-1);
    assert_int_equal(inleft, 0);
    iconv_close(cd);
    *outlen = cap - left;
    return out;
}

/* Replace the first occurrence of from by to (same length or not). */
static unsigned char *
replace(const unsigned char *in, size_t len, const char *from,
        const char *to, size_t *outlen)
{
    const char *p = memmem(in, len, from, strlen(from));
    size_t pre, fl = strlen(from), tl = strlen(to);
    unsigned char *out;

    assert_non_null(p);
    pre = (size_t)(p - (const char *)in);
    out = malloc(len - fl + tl + 1);
    assert_non_null(out);
    memcpy(out, in, pre);
    memcpy(out + pre, to, tl);
    memcpy(out + pre + tl, p + fl, len - pre - fl);
    *outlen = len - fl + tl;
    out[*outlen] = '\0';
    return out;
}

static int
has_issue(const struct sps_result *r, const char *field, const char *needle)
{
    size_t i;

    for (i = 0; i < r->nissues; i++) {
        if (field != NULL && strcmp(r->issues[i].field, field) != 0)
            continue;
        if (needle == NULL || strstr(r->issues[i].msg, needle) != NULL)
            return 1;
    }
    return 0;
}

static void
dump(const char *what, const struct sps_result *r)
{
    size_t i;

    for (i = 0; i < r->nissues; i++)
        print_message("  %s: [%d] line %d %s: %s\n", what,
                      r->issues[i].level, r->issues[i].line,
                      r->issues[i].field, r->issues[i].msg);
}

static int
validate_file(const char *path, struct sps_result *r)
{
    size_t len;
    unsigned char *d = slurp(path, &len);
    int n = sps_validate(schema, &limits, d, len, 1, r);

    free(d);
    return n;
}

/* decode + validate a string the way an envelope carries it */
static int
validate_content(const char *content, size_t len, int expect_text,
                 struct sps_result *r)
{
    unsigned char *doc = NULL;
    size_t dl = 0;
    int is_text = -1, n;
    char err[256];

    assert_int_equal(sps_decode(content, len, &doc, &dl, &is_text, err,
                                sizeof err), 0);
    assert_int_equal(is_text, expect_text);
    n = sps_validate(schema, &limits, doc, dl, is_text, r);
    free(doc);
    return n;
}

static int
setup(void **state)
{
    char err[512];

    (void)state;
    sps_init();
    if (sps_schema_load(SCHEMA_DIR, &schema, err, sizeof err) != 0) {
        print_error("schema: %s\n", err);
        return -1;
    }
    return 0;
}

static int
teardown(void **state)
{
    (void)state;
    sps_schema_free(schema);
    schema = NULL;
    xmlCleanupParser();
    return 0;
}

/* ------------------------------------------------------------------ */
/* schema                                                               */
/* ------------------------------------------------------------------ */

static void
test_schema_load_errors(void **state)
{
    struct sps_schema *s = (void *)1;
    char err[512], dir[] = "/tmp/test_sps_XXXXXX", p[600];
    FILE *f;

    (void)state;
    assert_int_equal(sps_schema_load("/nonexistent/schemas", &s, err,
                                     sizeof err), -1);
    assert_null(s);
    assert_non_null(strstr(err, "/nonexistent/schemas"));

    /* A schema that imports from the network or from outside its
     * directory must not compile. */
    assert_non_null(mkdtemp(dir));
    snprintf(p, sizeof p, "%s/data", dir);
    assert_int_equal(mkdir(p, 0700), 0);
    snprintf(p, sizeof p, "%s/data/standard", dir);
    assert_int_equal(mkdir(p, 0700), 0);
    snprintf(p, sizeof p, "%s/data/standard/SPSCertificate_17p0.xsd", dir);
    f = fopen(p, "w");
    assert_non_null(f);
    fputs("<xsd:schema xmlns:xsd=\"http://www.w3.org/2001/XMLSchema\" "
          "targetNamespace=\"urn:t\">\n"
          "<xsd:include schemaLocation=\"http://127.0.0.1:9/x.xsd\"/>\n"
          "</xsd:schema>\n", f);
    fclose(f);
    assert_int_equal(sps_schema_load(dir, &s, err, sizeof err), -1);
    assert_null(s);
    assert_non_null(strstr(err, "refused"));

    f = fopen(p, "w");
    assert_non_null(f);
    fputs("<xsd:schema xmlns:xsd=\"http://www.w3.org/2001/XMLSchema\" "
          "targetNamespace=\"urn:t\">\n"
          "<xsd:include schemaLocation=\"../../../../../../etc/passwd\"/>\n"
          "</xsd:schema>\n", f);
    fclose(f);
    assert_int_equal(sps_schema_load(dir, &s, err, sizeof err), -1);
    assert_null(s);
    assert_non_null(strstr(err, "outside the schema directory"));

    unlink(p);
    snprintf(p, sizeof p, "%s/data/standard", dir);
    rmdir(p);
    snprintf(p, sizeof p, "%s/data", dir);
    rmdir(p);
    rmdir(dir);
}

/* ------------------------------------------------------------------ */
/* samples                                                              */
/* ------------------------------------------------------------------ */

static void
test_samples_valid(void **state)
{
    static const char *const ok[] = { S_TMPL, S_ANNO, S_AGRO };
    struct sps_result r;
    size_t i;

    (void)state;
    for (i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        int n = validate_file(ok[i], &r);

        if (n != 0)
            dump(ok[i], &r);
        assert_int_equal(n, 0);
        assert_int_equal(r.nsevere, 0);
    }
}

static void
test_sample_signed_fails(void **state)
{
    struct sps_result r;

    (void)state;
    assert_true(validate_file(S_SIGN, &r) > 0);
    assert_true(has_issue(&r, "Signature", "ds:Signature"));
    assert_true(has_issue(&r, NULL, "not expected"));
    assert_int_equal(r.issues[0].level, SPS_SEVERE);
    assert_int_equal(r.issues[0].line, 289);
    /* facts are still extracted from an invalid document */
    assert_string_equal(r.facts.number, "123456789CO");
}

static void
test_sample_mattilsynet_fails(void **state)
{
    struct sps_result r;

    (void)state;
    assert_true(validate_file(S_MATT, &r) > 0);
    assert_true(has_issue(&r, "SPSExchangedDocument/ReferenceSPSReferencedDocument",
                          "ram:ReferenceSPSReferencedDocument"));
    assert_true(has_issue(&r, "SPSConsignment/TransitSPSCountry",
                          "ram:TransitSPSCountry"));
    assert_true(r.issues[0].line > 0);
}

/* ------------------------------------------------------------------ */
/* facts and header                                                     */
/* ------------------------------------------------------------------ */

static void
test_facts(void **state)
{
    struct sps_result r;

    (void)state;
    assert_int_equal(validate_file(S_AGRO, &r), 0);
    assert_string_equal(r.facts.number, "491412337BO");
    assert_int_equal(r.facts.type, 851);
    assert_int_equal(r.facts.status, 70);
    assert_string_equal(r.facts.export_country, "BO");
    assert_string_equal(r.facts.import_country, "EC");
    assert_int_equal(r.facts.number_line, 9);
    assert_int_equal(r.facts.type_line, 10);
    assert_int_equal(r.facts.status_line, 11);
    assert_int_equal(r.facts.export_line, 59);
    assert_int_equal(r.facts.import_line, 62);
}

static void
test_header_match(void **state)
{
    struct sps_result r;
    struct sps_header h = { "BO", "EC", 851, 70, " 491412337BO\n" };

    (void)state;
    assert_int_equal(validate_file(S_AGRO, &r), 0);
    assert_int_equal(sps_check_header(&h, &r), 0);
    assert_int_equal(r.nissues, 0);
    assert_int_equal(r.nsevere, 0);
}

static void
test_header_mismatch(void **state)
{
    static const struct {
        struct sps_header h;
        const char *field, *needle;
    } cases[] = {
        { { "BO", "EC", 851, 70, "491412337B" }, "NPPOCertificateNumber",
          "header NPPOCertificateNumber '491412337B' differs from "
          "SPSExchangedDocument/ID '491412337BO' (line 9)" },
        { { "BO", "PE", 851, 70, "491412337BO" }, "To",
          "header To 'PE' differs from SPSConsignment/ImportSPSCountry/ID "
          "'EC' (line 62)" },
        { { "BO", "EC", 657, 70, "491412337BO" }, "CertificateType",
          "header CertificateType 657 differs from "
          "SPSExchangedDocument/TypeCode 851 (line 10)" },
        { { "BO", "EC", 851, 39, "491412337BO" }, "CertificateStatus",
          "header CertificateStatus 39 differs from "
          "SPSExchangedDocument/StatusCode 70 (line 11)" },
        { { "CO", "EC", 851, 70, "491412337BO" }, "From",
          "header From 'CO' differs from SPSConsignment/ExportSPSCountry/ID "
          "'BO' (line 59)" },
    };
    struct sps_result base, r;
    struct sps_header all = { "CO", "PE", 1, 2, "X" };
    char longnum[300];
    size_t i;

    (void)state;
    assert_int_equal(validate_file(S_AGRO, &base), 0);
    for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        r = base;
        assert_int_equal(sps_check_header(&cases[i].h, &r), 1);
        assert_int_equal(r.nissues, 1);
        assert_int_equal(r.nsevere, 1);
        assert_int_equal(r.issues[0].level, SPS_SEVERE);
        assert_string_equal(r.issues[0].field, cases[i].field);
        assert_string_equal(r.issues[0].msg, cases[i].needle);
        assert_true(r.issues[0].line > 0);
    }
    r = base;
    assert_int_equal(sps_check_header(&all, &r), 5);
    assert_int_equal(r.nsevere, 5);

    /* value echoes are capped */
    memset(longnum, 'A', sizeof longnum - 1);
    longnum[sizeof longnum - 1] = '\0';
    all = (struct sps_header){ "BO", "EC", 851, 70, longnum };
    r = base;
    assert_int_equal(sps_check_header(&all, &r), 1);
    assert_true(strlen(r.issues[0].msg) < 200);
    assert_non_null(strstr(r.issues[0].msg, "..."));
}

static void
test_header_no_export_country(void **state)
{
    struct sps_result r;
    struct sps_header h = { "ZZ", "EC", 851, 70, "491412337BO" };

    (void)state;
    /* A document without ExportSPSCountry: From is not compared. */
    assert_int_equal(validate_file(S_AGRO, &r), 0);
    r.facts.export_country[0] = '\0';
    assert_int_equal(sps_check_header(&h, &r), 0);
}

/* ------------------------------------------------------------------ */
/* content forms and encodings                                          */
/* ------------------------------------------------------------------ */

static void
test_text_byte_exact(void **state)
{
    const char *c = "\r\n  <x/>  \n";
    unsigned char *doc = NULL;
    size_t dl = 0;
    int is_text = 0;
    char err[128];

    (void)state;
    assert_int_equal(sps_decode(c, strlen(c), &doc, &dl, &is_text, err,
                                sizeof err), 0);
    assert_int_equal(is_text, 1);
    assert_int_equal(dl, strlen(c));
    assert_memory_equal(doc, c, dl);
    free(doc);
}

static void
test_base64(void **state)
{
    size_t len;
    unsigned char *d = slurp(S_TMPL, &len), *doc = NULL;
    char *flat = b64(d, len, 0), *wrapped = b64(d, len, 1), err[128];
    struct sps_result r;
    size_t dl;
    int is_text;

    (void)state;
    assert_int_equal(sps_decode(flat, strlen(flat), &doc, &dl, &is_text, err,
                                sizeof err), 0);
    assert_int_equal(is_text, 0);
    assert_int_equal(dl, len);
    assert_memory_equal(doc, d, len);
    free(doc);
    assert_int_equal(validate_content(flat, strlen(flat), 0, &r), 0);
    assert_int_equal(validate_content(wrapped, strlen(wrapped), 0, &r), 0);
    free(flat);
    free(wrapped);
    free(d);
}

static void
test_utf16(void **state)
{
    size_t len, l16, l8d;
    unsigned char *d = slurp(S_AGRO, &len), *u16, *d16decl;
    char *enc;
    struct sps_result r;

    (void)state;
    /* 1. UTF-16 with BOM, declaration left at UTF-8 */
    u16 = conv("UTF-16", d, len, &l16);
    assert_true((u16[0] == 0xFF && u16[1] == 0xFE) ||
                (u16[0] == 0xFE && u16[1] == 0xFF));
    enc = b64(u16, l16, 1);
    if (validate_content(enc, strlen(enc), 0, &r) != 0)
        dump("utf16-bom", &r);
    assert_int_equal(r.nsevere, 0);
    assert_string_equal(r.facts.number, "491412337BO");
    free(enc);
    free(u16);

    /* 2. declaration says UTF-16, with BOM */
    d16decl = replace(d, len, "encoding=\"UTF-8\"", "encoding=\"UTF-16\"",
                      &l8d);
    u16 = conv("UTF-16", d16decl, l8d, &l16);
    enc = b64(u16, l16, 0);
    assert_int_equal(validate_content(enc, strlen(enc), 0, &r), 0);
    assert_string_equal(r.facts.import_country, "EC");
    free(enc);
    free(u16);

    /* 3. declaration says UTF-16, big endian without BOM */
    u16 = conv("UTF-16BE", d16decl, l8d, &l16);
    assert_int_equal(u16[0], 0);
    enc = b64(u16, l16, 0);
    assert_int_equal(validate_content(enc, strlen(enc), 0, &r), 0);
    free(enc);
    free(u16);

    /* 4. text (from the SOAP string) whose declaration says UTF-16: read
     * as UTF-8, and non-ASCII text survives */
    if (validate_content((const char *)d16decl, l8d, 1, &r) != 0)
        dump("text-utf16-decl", &r);
    assert_int_equal(r.nsevere, 0);
    assert_string_equal(r.facts.number, "491412337BO");

    /* ... while the same bytes as a file are rightly refused */
    assert_true(sps_validate(schema, &limits, d16decl, l8d, 0, &r) > 0);
    assert_true(has_issue(&r, NULL, "UTF-16"));
    free(d16decl);
    free(d);
}

static void
test_decode_errors(void **state)
{
    static const char *const bad[] = {
        "hello world!",               /* not base64 */
        "abcd",                       /* base64, not XML */
        "aGVsbG8gd29ybGQ=",           /* "hello world" */
        "PHg+PC94Pg=",                /* bad padding length */
        "PHg+P=C94",                  /* '=' in the middle */
        "PHg+PC94Pg===",              /* too much padding */
        "PHg+PC94Pg==\x01",           /* control character */
        "\xef\xbb\xbfPHg+",           /* BOM then base64 */
        "PHg-PC94Pg==",               /* base64url alphabet */
    };
    static const char *const empty[] = { "", " \r\n\t ", "====" };
    unsigned char *doc = (void *)1;
    size_t dl = 7, i;
    int is_text = 7;
    char err[128];

    (void)state;
    for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err[0] = '\0';
        assert_int_equal(sps_decode(bad[i], strlen(bad[i]), &doc, &dl,
                                    &is_text, err, sizeof err), -1);
        assert_null(doc);
        assert_string_equal(err,
                            "Content is neither XML text nor base64-encoded XML");
    }
    assert_int_equal(sps_decode(empty[0], 0, &doc, &dl, &is_text, err,
                                sizeof err), -1);
    assert_string_equal(err, "Content is empty");
    assert_int_equal(sps_decode(NULL, 0, &doc, &dl, &is_text, err,
                                sizeof err), -1);
    assert_string_equal(err, "Content is empty");
    assert_int_equal(sps_decode(empty[1], strlen(empty[1]), &doc, &dl,
                                &is_text, err, sizeof err), -1);
    assert_string_equal(err, "Content is empty");
    assert_int_equal(sps_decode(empty[2], strlen(empty[2]), &doc, &dl,
                                &is_text, err, sizeof err), -1);

    /* the same base64, valid, decodes */
    assert_int_equal(sps_decode("PHg+PC94Pg==", 12, &doc, &dl, &is_text, err,
                                sizeof err), 0);
    assert_int_equal(dl, 7);
    assert_memory_equal(doc, "<x></x>", 7);
    free(doc);
}

/* ------------------------------------------------------------------ */
/* hostile and broken documents                                         */
/* ------------------------------------------------------------------ */

static void
test_malformed(void **state)
{
    static const char doc[] =
        "<?xml version=\"1.0\"?>\n"
        "<rsm:SPSCertificate xmlns:rsm=\"" RSM "\">\n"
        "  <rsm:SPSExchangedDocument>\n"
        "  </rsm:SPSConsignment>\n"
        "</rsm:SPSCertificate>\n";
    struct sps_result r;

    (void)state;
    assert_true(sps_validate(schema, &limits, (const unsigned char *)doc,
                             strlen(doc), 1, &r) > 0);
    assert_int_equal(r.issues[0].level, SPS_SEVERE);
    assert_int_equal(r.issues[0].line, 4);
    assert_non_null(strstr(r.issues[0].msg, "mismatch"));
    assert_string_equal(r.issues[0].field, "SPSExchangedDocument");

    /* invalid UTF-8 in text content */
    assert_true(sps_validate(schema, &limits,
                             (const unsigned char *)"<a>\xff</a>", 8, 1,
                             &r) > 0);
    assert_int_equal(r.issues[0].line, 1);
}

static void
test_root_element(void **state)
{
    static const char other[] = "<foo/>";
    static const char wrongns[] =
        "<SPSCertificate xmlns=\"urn:example\"/>";
    struct sps_result r;

    (void)state;
    assert_int_equal(sps_validate(schema, &limits,
                                  (const unsigned char *)other,
                                  strlen(other), 1, &r), 1);
    assert_non_null(strstr(r.issues[0].msg,
                           "root element is foo without namespace, expected "
                           "rsm:SPSCertificate"));
    assert_int_equal(sps_validate(schema, &limits,
                                  (const unsigned char *)wrongns,
                                  strlen(wrongns), 1, &r), 1);
    assert_non_null(strstr(r.issues[0].msg, "urn:example"));
    assert_int_equal(r.facts.type, -1);
    assert_string_equal(r.facts.number, "");
}

/* Watch a file for any open/read during fn; -1 if inotify unavailable. */
static int
opened_during(const char *path, void (*fn)(void *), void *arg)
{
    char buf[4096] __attribute__((aligned(8)));
    int fd = inotify_init1(IN_NONBLOCK), wd, seen;

    if (fd < 0)
        return -1;
    wd = inotify_add_watch(fd, path, IN_OPEN | IN_ACCESS);
    if (wd < 0) {
        close(fd);
        return -1;
    }
    fn(arg);
    seen = read(fd, buf, sizeof buf) > 0;
    close(fd);
    return seen;
}

struct vjob {
    const char *doc;
    struct sps_result r;
    int n;
};

static void
run_vjob(void *arg)
{
    struct vjob *j = arg;

    j->n = sps_validate(schema, &limits, (const unsigned char *)j->doc,
                        strlen(j->doc), 1, &j->r);
}

static void
touch_file(void *arg)
{
    int fd = open(arg, O_RDONLY);

    if (fd >= 0)
        close(fd);
}

static void
expect_doctype_refused(const char *doc, const char *marker)
{
    struct vjob j = { doc, { 0 }, 0 };
    size_t i;
    int seen;

    seen = opened_during(marker, run_vjob, &j);
    if (seen < 0)
        run_vjob(&j);
    else
        assert_int_equal(seen, 0);
    assert_true(j.n > 0);
    assert_int_equal(j.r.issues[0].level, SPS_SEVERE);
    assert_non_null(strstr(j.r.issues[0].msg, "DOCTYPE"));
    assert_int_equal(j.r.issues[0].line, 2);
    for (i = 0; i < j.r.nissues; i++) {
        assert_null(strstr(j.r.issues[i].msg, "root:"));
        assert_null(strstr(j.r.issues[i].msg, "SECRET"));
        assert_null(strstr(j.r.issues[i].msg, "lol"));
    }
}

static void
test_doctype_refused(void **state)
{
    char marker[] = "/tmp/test_sps_marker_XXXXXX", doc[1024];
    int fd = mkstemp(marker), seen;
    static const char xxe_passwd[] =
        "<?xml version=\"1.0\"?>\n"
        "<!DOCTYPE x [<!ENTITY e SYSTEM \"file:///etc/passwd\">]>\n"
        "<rsm:SPSCertificate xmlns:rsm=\"" RSM "\">&e;</rsm:SPSCertificate>\n";
    static const char laughs[] =
        "<?xml version=\"1.0\"?>\n"
        "<!DOCTYPE lolz [\n"
        " <!ENTITY lol \"lol\">\n"
        " <!ENTITY lol1 \"&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;\">\n"
        " <!ENTITY lol2 \"&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;\">\n"
        " <!ENTITY lol3 \"&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;\">\n"
        " <!ENTITY lol4 \"&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;\">\n"
        " <!ENTITY lol5 \"&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;\">\n"
        " <!ENTITY lol6 \"&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;\">\n"
        " <!ENTITY lol7 \"&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;\">\n"
        " <!ENTITY lol8 \"&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;\">\n"
        " <!ENTITY lol9 \"&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;\">\n"
        "]>\n"
        "<rsm:SPSCertificate xmlns:rsm=\"" RSM "\">&lol9;</rsm:SPSCertificate>\n";

    (void)state;
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "SECRET\n", 7), 7);
    close(fd);

    /* the watch itself works */
    seen = opened_during(marker, touch_file, marker);
    if (seen < 0)
        print_message("  inotify unavailable: not watching the marker\n");
    else
        assert_int_equal(seen, 1);

    expect_doctype_refused(xxe_passwd, marker);
    snprintf(doc, sizeof doc,
             "<?xml version=\"1.0\"?>\n"
             "<!DOCTYPE x [<!ENTITY e SYSTEM \"file://%s\">]>\n"
             "<rsm:SPSCertificate xmlns:rsm=\"" RSM "\">&e;"
             "</rsm:SPSCertificate>\n", marker);
    expect_doctype_refused(doc, marker);
    /* the line of the issue is the DOCTYPE's, not later */
    expect_doctype_refused(laughs, marker);
    /* external DTD, local and remote */
    snprintf(doc, sizeof doc,
             "<?xml version=\"1.0\"?>\n"
             "<!DOCTYPE rsm:SPSCertificate SYSTEM \"%s\">\n"
             "<rsm:SPSCertificate xmlns:rsm=\"" RSM "\"/>\n", marker);
    expect_doctype_refused(doc, marker);
    expect_doctype_refused(
        "<?xml version=\"1.0\"?>\n"
        "<!DOCTYPE rsm:SPSCertificate PUBLIC \"-//X//Y\" "
        "\"http://127.0.0.1:9/x.dtd\">\n"
        "<rsm:SPSCertificate xmlns:rsm=\"" RSM "\"/>\n", marker);
    /* parameter entity pulling in an external file */
    snprintf(doc, sizeof doc,
             "<?xml version=\"1.0\"?>\n"
             "<!DOCTYPE x [<!ENTITY %% p SYSTEM \"%s\"> %%p;]>\n"
             "<rsm:SPSCertificate xmlns:rsm=\"" RSM "\"/>\n", marker);
    expect_doctype_refused(doc, marker);
    unlink(marker);
}

static void
test_entity_without_doctype(void **state)
{
    static const char doc[] =
        "<rsm:SPSCertificate xmlns:rsm=\"" RSM "\">\n&e;&lt;</rsm:SPSCertificate>";
    struct sps_result r;

    (void)state;
    assert_true(sps_validate(schema, &limits, (const unsigned char *)doc,
                             strlen(doc), 1, &r) > 0);
    assert_true(has_issue(&r, NULL, "&e;"));
    assert_int_equal(r.issues[0].line, 2);
}

static void
test_depth_limit(void **state)
{
    struct sps_limits lim = { 10, 1u << 20 };
    char doc[2048];
    size_t o = 0;
    int i;
    struct sps_result r;

    (void)state;
    o += (size_t)snprintf(doc + o, sizeof doc - o,
                          "<rsm:SPSCertificate xmlns:rsm=\"" RSM "\">\n");
    for (i = 0; i < 20; i++)
        o += (size_t)snprintf(doc + o, sizeof doc - o, "<a>\n");
    for (i = 0; i < 20; i++)
        o += (size_t)snprintf(doc + o, sizeof doc - o, "</a>");
    snprintf(doc + o, sizeof doc - o, "</rsm:SPSCertificate>");

    assert_true(sps_validate(schema, &lim, (const unsigned char *)doc,
                             strlen(doc), 1, &r) > 0);
    assert_int_equal(r.nsevere, 1);
    assert_non_null(strstr(r.issues[0].msg, "nesting deeper than 10"));
    assert_int_equal(r.issues[0].line, 11);

    /* the samples are shallower than 10 elements */
    lim.max_depth = 9;
    assert_int_equal(validate_file(S_TMPL, &r), 0);
    assert_int_equal(sps_validate(schema, &lim, (const unsigned char *)"<a/>",
                                  4, 1, &r), 1);
    assert_non_null(strstr(r.issues[0].msg, "root element"));
}

static void
test_size_limit(void **state)
{
    struct sps_limits lim = { 64, 1000 };
    size_t len;
    unsigned char *d = slurp(S_TMPL, &len);
    struct sps_result r;

    (void)state;
    assert_int_equal(sps_validate(schema, &lim, d, len, 1, &r), 1);
    assert_non_null(strstr(r.issues[0].msg, "more than the limit of 1000"));
    lim.max_bytes = len;
    assert_int_equal(sps_validate(schema, &lim, d, len, 1, &r), 0);
    assert_int_equal(sps_validate(schema, &lim, d, 0, 1, &r), 1);
    assert_string_equal(r.issues[0].msg, "Content is empty");
    free(d);
}

/* ------------------------------------------------------------------ */
/* issues and UTF-8                                                     */
/* ------------------------------------------------------------------ */

static void
test_add_issue_cap(void **state)
{
    struct sps_result r;
    int i;

    (void)state;
    memset(&r, 0, sizeof r);
    for (i = 0; i < SPS_MAX_ISSUES + 8; i++)
        sps_add_issue(&r, SPS_SEVERE, i, "f", "issue %d\n", i);
    sps_add_issue(&r, SPS_WARNING, 1, NULL, "warn");
    assert_int_equal(r.nissues, SPS_MAX_ISSUES);
    assert_int_equal(r.nsevere, SPS_MAX_ISSUES + 8);
    assert_string_equal(r.issues[3].msg, "issue 3");
    assert_string_equal(r.issues[3].field, "f");
    assert_int_equal(r.issues[3].line, 3);
}

static void
test_plain_utf8(void **state)
{
    static const struct {
        const char *s;
        size_t len;
        int ok;
    } c[] = {
#define C(lit, ok) { lit, sizeof(lit) - 1, ok }
        C("", 1),
        C("<a>plain ASCII\ttab\r\nnewline</a>", 1),
        C("Carmi\xc3\xb1" "a \xe2\x82\xac \xf0\x9f\x98\x80", 1),
        C("\xf4\x8f\xbf\xbf", 1),                 /* U+10FFFF */
        C("\xef\xbb\xbf<a/>", 0),                 /* BOM */
        C("<a>\xef\xbb\xbf</a>", 1),              /* U+FEFF inside: fine */
        C("\xc0\x80", 0),                         /* overlong NUL */
        C("\xc1\xbf", 0),                         /* overlong */
        C("\xe0\x80\xaf", 0),                     /* overlong '/' */
        C("\xf0\x80\x80\xaf", 0),                 /* overlong */
        C("\xed\xa0\x80", 0),                     /* surrogate D800 */
        C("\xed\xbf\xbf", 0),                     /* surrogate DFFF */
        C("\xf4\x90\x80\x80", 0),                 /* > U+10FFFF */
        C("\xf5\x80\x80\x80", 0),
        C("\xc3", 0),                             /* truncated */
        C("a\xe2\x82", 0),                        /* truncated */
        C("\x80", 0),                             /* stray continuation */
        C("\xc3\x28", 0),                         /* bad continuation */
        C("a\0b", 0),                             /* NUL */
        C("\x01", 0), C("\x08", 0), C("\x0b", 0), C("\x0c", 0),
        C("\x1f", 0),
        C("\xef\xbf\xbe", 0),                     /* U+FFFE */
        C("\xef\xbf\xbf", 0),                     /* U+FFFF */
        C("\xee\x80\x80\xef\xbf\xbd", 1),         /* U+E000, U+FFFD */
#undef C
    };
    size_t i;

    (void)state;
    for (i = 0; i < sizeof c / sizeof c[0]; i++) {
        if (sps_is_plain_utf8((const unsigned char *)c[i].s, c[i].len) !=
            c[i].ok)
            print_error("case %zu\n", i);
        assert_int_equal(sps_is_plain_utf8((const unsigned char *)c[i].s,
                                           c[i].len), c[i].ok);
    }
}

static void
test_plain_utf8_samples(void **state)
{
    size_t len, l16;
    unsigned char *d = slurp(S_AGRO, &len), *u16;

    (void)state;
    assert_int_equal(sps_is_plain_utf8(d, len), 1);
    u16 = conv("UTF-16", d, len, &l16);
    assert_int_equal(sps_is_plain_utf8(u16, l16), 0);
    free(u16);
    free(d);
}

/* ------------------------------------------------------------------ */
/* threads                                                              */
/* ------------------------------------------------------------------ */

struct tjob {
    const unsigned char *valid, *invalid;
    size_t vlen, ilen;
    int failures;
};

static void *
thread_main(void *arg)
{
    struct tjob *j = arg;
    struct sps_result *r = malloc(sizeof *r);
    int i;

    if (r == NULL) {
        j->failures++;
        return NULL;
    }
    for (i = 0; i < 10; i++) {
        if (sps_validate(schema, &limits, j->valid, j->vlen, 1, r) != 0 ||
            strcmp(r->facts.number, "491412337BO") != 0)
            j->failures++;
        if (sps_validate(schema, &limits, j->invalid, j->ilen, 1, r) == 0 ||
            !has_issue(r, NULL, "ds:Signature"))
            j->failures++;
    }
    free(r);
    return NULL;
}

static void
test_threads(void **state)
{
    enum { NT = 4 };
    pthread_t t[NT];
    struct tjob j[NT];
    size_t vlen, ilen;
    unsigned char *v = slurp(S_AGRO, &vlen), *inv = slurp(S_SIGN, &ilen);
    int i;

    (void)state;
    for (i = 0; i < NT; i++) {
        j[i] = (struct tjob){ v, inv, vlen, ilen, 0 };
        assert_int_equal(pthread_create(&t[i], NULL, thread_main, &j[i]), 0);
    }
    for (i = 0; i < NT; i++) {
        pthread_join(t[i], NULL);
        assert_int_equal(j[i].failures, 0);
    }
    free(v);
    free(inv);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_schema_load_errors),
        cmocka_unit_test(test_samples_valid),
        cmocka_unit_test(test_sample_signed_fails),
        cmocka_unit_test(test_sample_mattilsynet_fails),
        cmocka_unit_test(test_facts),
        cmocka_unit_test(test_header_match),
        cmocka_unit_test(test_header_mismatch),
        cmocka_unit_test(test_header_no_export_country),
        cmocka_unit_test(test_text_byte_exact),
        cmocka_unit_test(test_base64),
        cmocka_unit_test(test_utf16),
        cmocka_unit_test(test_decode_errors),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_root_element),
        cmocka_unit_test(test_doctype_refused),
        cmocka_unit_test(test_entity_without_doctype),
        cmocka_unit_test(test_depth_limit),
        cmocka_unit_test(test_size_limit),
        cmocka_unit_test(test_add_issue_cap),
        cmocka_unit_test(test_plain_utf8),
        cmocka_unit_test(test_plain_utf8_samples),
        cmocka_unit_test(test_threads),
    };

    return cmocka_run_group_tests(tests, setup, teardown);
}
