/*
 * test_config.c - unit tests of config/config.c.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * The group set-up makes a scratch tree under a mkdtemp directory:
 *   etc/test.conf      the configuration under test (rewritten per test)
 *   pki/               self-signed certificates and keys made by openssl(1)
 *   schema/data/standard/SPSCertificate_17p0.xsd   (a dummy)
 *   var/               where the store goes
 * Each error test starts from the good base configuration, changes one
 * thing and checks the exact "file:line: message".
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include "config.h"

static char tmpdir[PATH_MAX];      /* realpath of the mkdtemp directory */
static char conf[PATH_MAX + 32];   /* tmpdir/etc/test.conf */
static char etc[PATH_MAX + 32];    /* tmpdir/etc (what relative paths
                                      are joined to) */
static char fp1[65], fp2[65], fp3[65]; /* SPKI SHA-256 of p1, p2, p3 */
static char base[4096];            /* the good configuration */
static char mbase[4096];           /* a good configuration with mail */

/* ---- helpers ----------------------------------------------------------- */

static int run(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int run(const char *fmt, ...)
{
    char cmd[4 * PATH_MAX];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    return system(cmd);
}

static int write_file(const char *path, const char *text, size_t len)
{
    FILE *f = fopen(path, "w");

    if (!f)
        return -1;
    if (fwrite(text, 1, len, f) != len) {
        fclose(f);
        return -1;
    }
    return fclose(f);
}

static void write_conf(const char *text)
{
    assert_int_equal(write_file(conf, text, strlen(text)), 0);
}

/* Fingerprint the way an operator would, with the openssl tool. */
static int shell_fp(const char *crt, char out[65])
{
    char cmd[2 * PATH_MAX];
    FILE *p;
    int ok;

    snprintf(cmd, sizeof cmd,
             "openssl x509 -in '%s' -pubkey -noout | "
             "openssl pkey -pubin -outform DER | sha256sum", crt);
    p = popen(cmd, "r");
    if (!p)
        return -1;
    ok = fscanf(p, "%64[0-9a-f]", out) == 1 && strlen(out) == 64;
    return (pclose(p) == 0 && ok) ? 0 : -1;
}

static int make_cert(const char *name)
{
    return run("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 "
               "-nodes -days 2 -subj '/CN=%s' -keyout '%s/pki/%s.key' "
               "-out '%s/pki/%s.crt' 2>/dev/null",
               name, tmpdir, name, tmpdir, name);
}

/* text with the one occurrence of `from` replaced by `to` (malloc'd) */
static char *replace(const char *text, const char *from, const char *to)
{
    const char *at = strstr(text, from);
    char *out;

    if (!at || strstr(at + 1, from))
        fail_msg("'%s' does not occur exactly once in the config", from);
    out = malloc(strlen(text) + strlen(to) + 1);
    assert_non_null(out);
    memcpy(out, text, (size_t)(at - text));
    strcpy(out + (at - text), to);
    strcat(out, at + strlen(from));
    return out;
}

/* the base configuration with one change */
static char *edit(const char *from, const char *to)
{
    return replace(base, from, to);
}

/* the mail configuration with one change */
static char *medit(const char *from, const char *to)
{
    return replace(mbase, from, to);
}

/* Load path and check it fails with exactly `want`. */
static void expect_fail_path(const char *path, const char *want)
{
    struct config *c = (struct config *)1;
    char err[2048] = "";

    assert_int_equal(config_load(path, &c, err, sizeof err), -1);
    assert_null(c);
    assert_string_equal(err, want);
}

/* Load text as the configuration; want is what follows the file name. */
static void expect_text(const char *text, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void expect_text(const char *text, const char *fmt, ...)
{
    char want[2048];
    int n = snprintf(want, sizeof want, "%s", conf);
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(want + n, sizeof want - (size_t)n, fmt, ap);
    va_end(ap);
    write_conf(text);
    expect_fail_path(conf, want);
}

/* The base configuration with one change must fail with the message. */
static void expect_edit(const char *from, const char *to, const char *fmt,
                        ...) __attribute__((format(printf, 3, 4)));
static void expect_edit(const char *from, const char *to, const char *fmt,
                        ...)
{
    char want[2048];
    int n = snprintf(want, sizeof want, "%s", conf);
    char *text = edit(from, to);
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(want + n, sizeof want - (size_t)n, fmt, ap);
    va_end(ap);
    write_conf(text);
    free(text);
    expect_fail_path(conf, want);
}

/* The mail configuration with one change must fail with the message. */
static void expect_medit(const char *from, const char *to, const char *fmt,
                         ...) __attribute__((format(printf, 3, 4)));
static void expect_medit(const char *from, const char *to, const char *fmt,
                         ...)
{
    char want[2048];
    int n = snprintf(want, sizeof want, "%s", conf);
    char *text = medit(from, to);
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(want + n, sizeof want - (size_t)n, fmt, ap);
    va_end(ap);
    write_conf(text);
    free(text);
    expect_fail_path(conf, want);
}

/* Write pki/name with the given content and mode. */
static void write_pki(const char *name, const char *text, mode_t mode)
{
    char p[PATH_MAX + 64];

    snprintf(p, sizeof p, "%s/pki/%s", tmpdir, name);
    assert_int_equal(write_file(p, text, strlen(text)), 0);
    assert_int_equal(chmod(p, mode), 0);
}

static struct config *load_ok(const char *text)
{
    struct config *c = NULL;
    char err[2048] = "";

    write_conf(text);
    if (config_load(conf, &c, err, sizeof err) != 0)
        fail_msg("config_load failed: %s", err);
    assert_non_null(c);
    return c;
}

/* ---- set-up ----------------------------------------------------------- */

static int group_setup(void **state)
{
    char tmpl[] = "/tmp/test_config.XXXXXX";
    static const char *const dirs[] = {
        "etc", "pki", "var", "schema", "schema/data",
        "schema/data/standard", "empty",
    };
    char p[PATH_MAX + 64];
    int n;

    (void)state;
    if (!mkdtemp(tmpl) || !realpath(tmpl, tmpdir))
        return -1;
    for (size_t i = 0; i < sizeof dirs / sizeof dirs[0]; i++) {
        snprintf(p, sizeof p, "%s/%s", tmpdir, dirs[i]);
        if (mkdir(p, 0700) < 0)
            return -1;
    }
    snprintf(p, sizeof p, "%s/schema/data/standard/SPSCertificate_17p0.xsd",
             tmpdir);
    if (write_file(p, "<xs:schema/>\n", 13) < 0)
        return -1;
    snprintf(conf, sizeof conf, "%s/etc/test.conf", tmpdir);
    snprintf(etc, sizeof etc, "%s/etc", tmpdir);

    if (make_cert("ca") || make_cert("server") || make_cert("p1") ||
        make_cert("p2") || make_cert("p3"))
        return -1;
    if (run("chmod 600 '%s'/pki/*.key && cp -p '%s/pki/server.key' "
            "'%s/pki/open.key' && chmod 644 '%s/pki/open.key'",
            tmpdir, tmpdir, tmpdir, tmpdir))
        return -1;
    if (shell_fp(strcat(strcpy(p, tmpdir), "/pki/p1.crt"), fp1) ||
        shell_fp(strcat(strcpy(p, tmpdir), "/pki/p2.crt"), fp2) ||
        shell_fp(strcat(strcpy(p, tmpdir), "/pki/p3.crt"), fp3))
        return -1;
    if (!strcmp(fp1, fp2) || !strcmp(fp2, fp3) || !strcmp(fp1, fp3))
        return -1;

    n = snprintf(base, sizeof base,
        "# test configuration\n"                                      /* 1 */
        "country = \"NL\";\n"                                         /* 2 */
        "listen = { address = \"127.0.0.1\"; port = 8443; };\n"       /* 3 */
        "tls = { cert = \"../pki/server.crt\"; key = \"../pki/server.key\";"
        " ca = \"../pki/ca.crt\"; };\n"                               /* 4 */
        "store = \"../var/ecert.db\";\n"                              /* 5 */
        "schema_dir = \"../schema\";\n"                               /* 6 */
        "limits = { max_request_bytes = 1048576; xml_depth = 32; "
        "max_pull = 10; recv_timeout = 11; send_timeout = 12; "
        "idle_timeout = 13; workers = 4; max_connections = 100; };\n" /* 7 */
        "partners = (\n"                                              /* 8 */
        "  { id = \"nl-issuer\"; country = \"NL\"; roles = [ \"submit\" ];"
        " certificate = \"../pki/p1.crt\"; },\n"                      /* 9 */
        "  { id = \"ec-nppo\"; country = \"EC\"; roles = [ \"submit\","
        " \"pull\" ]; fingerprint = \"sha256:%s\"; }\n"               /* 10 */
        ");\n",                                                       /* 11 */
        fp2);
    if (n <= 0 || (size_t)n >= sizeof base)
        return -1;

    /* mail: a signing certificate, relay credentials (mode 600 and 644) */
    if (make_cert("signer") ||
        run("chmod 600 '%s/pki/signer.key' && "
            "printf 'mailer:pa:ss\\n' > '%s/pki/relay.auth' && "
            "chmod 600 '%s/pki/relay.auth' && "
            "cp -p '%s/pki/relay.auth' '%s/pki/open.auth' && "
            "chmod 644 '%s/pki/open.auth'",
            tmpdir, tmpdir, tmpdir, tmpdir, tmpdir, tmpdir))
        return -1;
    n = snprintf(mbase, sizeof mbase,
        "# mail configuration\n"                                     /* 1 */
        "country = \"NL\";\n"                                        /* 2 */
        "listen = { address = \"127.0.0.1\"; port = 8443; };\n"      /* 3 */
        "tls = { cert = \"../pki/server.crt\"; key = \"../pki/server.key\";"
        " ca = \"../pki/ca.crt\"; };\n"                               /* 4 */
        "store = \"../var/ecert.db\";\n"                              /* 5 */
        "schema_dir = \"../schema\";\n"                               /* 6 */
        "partners = (\n"                                             /* 7 */
        "  { id = \"nl-issuer\"; country = \"NL\"; roles = [ \"submit\" ];"
        " certificate = \"../pki/p1.crt\"; },\n"                      /* 8 */
        "  { id = \"ec-nppo\"; country = \"EC\"; roles = [ \"pull\" ];"
        " fingerprint = \"%s\";\n"                                   /* 9 */
        "    mail = { to = [ \"nppo@ec.example\", \"backup@ec.example\" ];"
        " certificate = \"../pki/p3.crt\"; relay = \"ec-relay\"; }; },\n"
                                                                     /* 10 */
        "  { id = \"pe-nppo\"; country = \"PE\"; roles = [ \"pull\" ];"
        " fingerprint = \"%s\";\n"                                   /* 11 */
        "    mail = { to = [ \"pe@pe.example\" ]; }; }\n"               /* 12 */
        ");\n"                                                       /* 13 */
        "mail = {\n"                                                 /* 14 */
        "  sender = \"ecert@gateway.example\";\n"                     /* 15 */
        "  ehlo = \"gateway.example\";\n"                             /* 16 */
        "  signing = { cert = \"../pki/signer.crt\";"
        " key = \"../pki/signer.key\"; chain = \"../pki/ca.crt\"; };\n"
                                                                     /* 17 */
        "  relay = { host = \"127.0.0.1\"; port = 25;"
        " starttls = \"optional\"; ca = \"../pki/ca.crt\";"
        " auth_file = \"../pki/relay.auth\"; concurrency = 3; };\n"   /* 18 */
        "  relays = (\n"                                             /* 19 */
        "    { name = \"ec-relay\"; host = \"smtp.ec.example\";"
        " port = 2525; starttls = \"off\"; concurrency = 1; },\n"     /* 20 */
        "    { name = \"v6\"; host = \"::1\"; }\n"                    /* 21 */
        "  );\n"                                                     /* 22 */
        "  retry = { first_delay = 30; factor = 1.5; max_delay = 900;"
        " max_age = 86400; };\n"                                     /* 23 */
        "  timeout = 20;\n"                                          /* 24 */
        "  workers = 8;\n"                                           /* 25 */
        "};\n",                                                      /* 26 */
        fp2, fp3);
    return (n > 0 && (size_t)n < sizeof mbase) ? 0 : -1;
}

static int group_teardown(void **state)
{
    (void)state;
    if (tmpdir[0] && strncmp(tmpdir, "/tmp/test_config.", 17) == 0)
        run("rm -rf '%s'", tmpdir);
    return 0;
}

/* ---- good configurations ------------------------------------------------ */

static void test_good(void **state)
{
    struct config *c = load_ok(base);
    char hex[65], want[PATH_MAX + 64];
    unsigned char sha[32];

    (void)state;
    assert_string_equal(c->path, conf);
    assert_string_equal(c->country, "NL");
    assert_string_equal(c->listen_addr, "127.0.0.1");
    assert_int_equal(c->listen_port, 8443);
    snprintf(want, sizeof want, "%s/../pki/server.crt", etc);
    assert_string_equal(c->tls_cert, want);
    snprintf(want, sizeof want, "%s/../pki/server.key", etc);
    assert_string_equal(c->tls_key, want);
    snprintf(want, sizeof want, "%s/../pki/ca.crt", etc);
    assert_string_equal(c->tls_ca, want);
    snprintf(want, sizeof want, "%s/../var/ecert.db", etc);
    assert_string_equal(c->store, want);
    snprintf(want, sizeof want, "%s/../schema", etc);
    assert_string_equal(c->schema_dir, want);
    assert_int_equal(c->max_request_bytes, 1048576);
    assert_int_equal(c->xml_depth, 32);
    assert_int_equal(c->max_pull, 10);
    assert_int_equal(c->recv_timeout, 11);
    assert_int_equal(c->send_timeout, 12);
    assert_int_equal(c->idle_timeout, 13);
    assert_int_equal(c->workers, 4);
    assert_int_equal(c->max_connections, 100);

    assert_int_equal(c->npartners, 2);
    assert_string_equal(c->partners[0].id, "nl-issuer");
    assert_string_equal(c->partners[0].country, "NL");
    assert_int_equal(c->partners[0].roles, ROLE_SUBMIT);
    assert_int_equal(c->partners[0].line, 9);
    config_hex(c->partners[0].spki_sha256, hex);
    assert_string_equal(hex, fp1);      /* from certificate = */

    assert_string_equal(c->partners[1].id, "ec-nppo");
    assert_string_equal(c->partners[1].country, "EC");
    assert_int_equal(c->partners[1].roles, ROLE_SUBMIT | ROLE_PULL);
    assert_int_equal(c->partners[1].line, 10);
    config_hex(c->partners[1].spki_sha256, hex);
    assert_string_equal(hex, fp2);      /* from fingerprint = */

    /* look-ups */
    assert_int_equal(config_parse_fingerprint(fp1, sha), 0);
    assert_ptr_equal(config_partner_by_spki(c, sha), &c->partners[0]);
    assert_int_equal(config_parse_fingerprint(fp2, sha), 0);
    assert_ptr_equal(config_partner_by_spki(c, sha), &c->partners[1]);
    assert_int_equal(config_parse_fingerprint(fp3, sha), 0);
    assert_null(config_partner_by_spki(c, sha));
    assert_ptr_equal(config_partner_by_id(c, "ec-nppo"), &c->partners[1]);
    assert_ptr_equal(config_partner_by_id(c, "nl-issuer"), &c->partners[0]);
    assert_null(config_partner_by_id(c, "EC-NPPO"));
    assert_null(config_partner_by_id(c, "nl"));
    assert_null(config_partner_by_id(c, ""));
    config_free(c);
}

static void test_defaults(void **state)
{
    char *text = edit("limits = { max_request_bytes = 1048576; xml_depth = 32; "
                      "max_pull = 10; recv_timeout = 11; send_timeout = 12; "
                      "idle_timeout = 13; workers = 4; max_connections = 100; "
                      "};\n", "");
    struct config *c = load_ok(text);

    (void)state;
    free(text);
    assert_int_equal(c->max_request_bytes, 4194304);
    assert_int_equal(c->xml_depth, 64);
    assert_int_equal(c->max_pull, 50);
    assert_int_equal(c->recv_timeout, 30);
    assert_int_equal(c->send_timeout, 30);
    assert_int_equal(c->idle_timeout, 60);
    assert_int_equal(c->workers, 8);
    assert_int_equal(c->max_connections, 256);
    assert_int_equal(c->partners[0].line, 8);   /* one line up */
    config_free(c);

    /* an empty group and a partial one */
    text = edit("max_request_bytes = 1048576; xml_depth = 32; max_pull = 10; "
                "recv_timeout = 11; send_timeout = 12; idle_timeout = 13; "
                "workers = 4; max_connections = 100; ", "workers = 256; ");
    c = load_ok(text);
    free(text);
    assert_int_equal(c->workers, 256);
    assert_int_equal(c->max_pull, 50);
    assert_int_equal(c->max_request_bytes, 4194304);
    config_free(c);
}

static void test_bounds_accepted(void **state)
{
    char *text = edit("max_request_bytes = 1048576; xml_depth = 32; "
                      "max_pull = 10; recv_timeout = 11; send_timeout = 12; "
                      "idle_timeout = 13; workers = 4; max_connections = 100;",
                      "max_request_bytes = 1073741824; xml_depth = 8; "
                      "max_pull = 1000; recv_timeout = 1; send_timeout = 3600;"
                      " idle_timeout = 3600; workers = 1; "
                      "max_connections = 100000;");
    struct config *c = load_ok(text);

    (void)state;
    free(text);
    assert_int_equal(c->max_request_bytes, 1073741824L);
    assert_int_equal(c->xml_depth, 8);
    assert_int_equal(c->max_pull, 1000);
    assert_int_equal(c->recv_timeout, 1);
    assert_int_equal(c->send_timeout, 3600);
    assert_int_equal(c->idle_timeout, 3600);
    assert_int_equal(c->workers, 1);
    assert_int_equal(c->max_connections, 100000);
    config_free(c);

    text = edit("port = 8443;", "port = 65535;");
    c = load_ok(text);
    free(text);
    assert_int_equal(c->listen_port, 65535);
    config_free(c);
}

/* Fingerprint spellings, roles as a list, absolute paths, a relative
 * config path. */
static void test_variants(void **state)
{
    char from[128], to[PATH_MAX + 64], cwd[PATH_MAX], want[PATH_MAX + 64];
    char hex[65], err[1024] = "";
    struct config *c;
    char *t1, *t2;
    size_t k = 0;
    int rc;

    (void)state;
    /* "AB:CD:..." upper case, no prefix */
    k = (size_t)snprintf(to, sizeof to, "fingerprint = \"");
    for (int i = 0; i < 64; i += 2) {
        if (i)
            to[k++] = ':';
        to[k++] = (char)toupper((unsigned char)fp2[i]);
        to[k++] = (char)toupper((unsigned char)fp2[i + 1]);
    }
    snprintf(to + k, sizeof to - k, "\";");
    snprintf(from, sizeof from, "fingerprint = \"sha256:%s\";", fp2);
    t1 = edit(from, to);
    c = load_ok(t1);
    free(t1);
    config_hex(c->partners[1].spki_sha256, hex);
    assert_string_equal(hex, fp2);
    config_free(c);

    /* roles as a list ( ); absolute certificate and store paths */
    snprintf(to, sizeof to, "certificate = \"%s/pki/p1.crt\";", tmpdir);
    t1 = edit("certificate = \"../pki/p1.crt\";", to);
    t2 = replace(t1, "roles = [ \"submit\" ]", "roles = ( \"submit\" )");
    free(t1);
    snprintf(to, sizeof to, "store = \"%s/var/x.db\";", tmpdir);
    t1 = replace(t2, "store = \"../var/ecert.db\";", to);
    free(t2);
    c = load_ok(t1);
    free(t1);
    config_hex(c->partners[0].spki_sha256, hex);
    assert_string_equal(hex, fp1);
    assert_int_equal(c->partners[0].roles, ROLE_SUBMIT);
    snprintf(want, sizeof want, "%s/var/x.db", tmpdir);
    assert_string_equal(c->store, want);
    config_free(c);

    /* a relative config file path: paths still come out absolute */
    write_conf(base);
    assert_non_null(getcwd(cwd, sizeof cwd));
    assert_int_equal(chdir(tmpdir), 0);
    c = NULL;
    rc = config_load("etc/test.conf", &c, err, sizeof err);
    assert_int_equal(chdir(cwd), 0);
    if (rc)
        fail_msg("%s", err);
    assert_string_equal(c->path, "etc/test.conf");
    snprintf(want, sizeof want, "%s/etc/../var/ecert.db", tmpdir);
    assert_string_equal(c->store, want);
    config_free(c);
}

static void test_example_style(void **state)
{
    /* the example's shape: comments, multi-line groups, trailing commas
     * absent, no limits */
    char text[4096];
    struct config *c;

    (void)state;
    snprintf(text, sizeof text,
             "# ecertd configuration\n"
             "country = \"PE\";   # own country\n"
             "listen = {\n  address = \"::1\";\n  port = 1;\n};\n"
             "tls = {\n  cert = \"../pki/server.crt\";\n"
             "  key = \"../pki/server.key\";\n  ca = \"../pki/ca.crt\";\n};\n"
             "store = \"../var/ecert.db\";\n"
             "schema_dir = \"../schema\";\n"
             "partners = (\n"
             "  { id = \"A.b_c-9\"; country = \"BO\"; roles = [ \"pull\" ];\n"
             "    fingerprint = \"%s\"; }\n"
             ");\n", fp3);
    c = load_ok(text);
    assert_string_equal(c->country, "PE");
    assert_string_equal(c->listen_addr, "::1");
    assert_int_equal(c->listen_port, 1);
    assert_int_equal(c->npartners, 1);
    assert_string_equal(c->partners[0].id, "A.b_c-9");
    assert_string_equal(c->partners[0].country, "BO");
    assert_int_equal(c->partners[0].roles, ROLE_PULL);
    assert_int_equal(c->partners[0].line, 15);
    config_free(c);
}

/* ---- helpers exported by config.h ---------------------------------------- */

static void test_parse_fingerprint(void **state)
{
    unsigned char a[32], b[32];
    char hex[65], buf[256];

    (void)state;
    assert_int_equal(config_parse_fingerprint(fp1, a), 0);
    config_hex(a, hex);
    assert_string_equal(hex, fp1);

    snprintf(buf, sizeof buf, "sha256:%s", fp1);
    assert_int_equal(config_parse_fingerprint(buf, b), 0);
    assert_memory_equal(a, b, 32);
    snprintf(buf, sizeof buf, "SHA256:%s", fp1);
    assert_int_equal(config_parse_fingerprint(buf, b), 0);
    assert_memory_equal(a, b, 32);

    assert_int_equal(config_parse_fingerprint(
        "00:01:02:03:04:05:06:07:08:09:0A:0B:0C:0D:0E:0F:"
        "10:11:12:13:14:15:16:17:18:19:1a:1b:1c:1d:1e:ff", a), 0);
    for (int i = 0; i < 31; i++)
        assert_int_equal(a[i], i);
    assert_int_equal(a[31], 0xff);
    config_hex(a, hex);
    assert_string_equal(hex, "000102030405060708090a0b0c0d0e0f"
                             "101112131415161718191a1b1c1d1eff");

    memset(b, 0x5a, sizeof b);
    memcpy(a, b, 32);
    assert_int_equal(config_parse_fingerprint("", a), -1);
    assert_int_equal(config_parse_fingerprint("sha256:", a), -1);
    assert_int_equal(config_parse_fingerprint(fp1 + 1, a), -1);    /* 63 */
    snprintf(buf, sizeof buf, "%s00", fp1);                         /* 66 */
    assert_int_equal(config_parse_fingerprint(buf, a), -1);
    snprintf(buf, sizeof buf, "%s", fp1);
    buf[10] = 'g';
    assert_int_equal(config_parse_fingerprint(buf, a), -1);
    snprintf(buf, sizeof buf, ":%s", fp1);                  /* leading : */
    assert_int_equal(config_parse_fingerprint(buf, a), -1);
    snprintf(buf, sizeof buf, "%s:", fp1);                  /* trailing : */
    assert_int_equal(config_parse_fingerprint(buf, a), -1);
    snprintf(buf, sizeof buf, "%.3s:%s", fp1, fp1 + 3);     /* odd place */
    assert_int_equal(config_parse_fingerprint(buf, a), -1);
    snprintf(buf, sizeof buf, "%.2s::%s", fp1, fp1 + 2);    /* doubled */
    assert_int_equal(config_parse_fingerprint(buf, a), -1);
    snprintf(buf, sizeof buf, "md5:%s", fp1);
    assert_int_equal(config_parse_fingerprint(buf, a), -1);
    snprintf(buf, sizeof buf, " %s", fp1);
    assert_int_equal(config_parse_fingerprint(buf, a), -1);
    assert_memory_equal(a, b, 32);      /* untouched on failure */
}

static void test_spki_of_file(void **state)
{
    char path[PATH_MAX + 64], err[PATH_MAX + 128], hex[65], want[PATH_MAX + 128];
    unsigned char sha[32];

    (void)state;
    snprintf(path, sizeof path, "%s/pki/p3.crt", tmpdir);
    assert_int_equal(config_spki_of_file(path, sha, err, sizeof err), 0);
    config_hex(sha, hex);
    assert_string_equal(hex, fp3);

    snprintf(path, sizeof path, "%s/pki/none.crt", tmpdir);
    assert_int_equal(config_spki_of_file(path, sha, err, sizeof err), -1);
    snprintf(want, sizeof want, "%s: No such file or directory", path);
    assert_string_equal(err, want);

    snprintf(path, sizeof path, "%s/pki/p3.key", tmpdir);  /* not a cert */
    assert_int_equal(config_spki_of_file(path, sha, err, sizeof err), -1);
    snprintf(want, sizeof want, "%s: no PEM certificate in it", path);
    assert_string_equal(err, want);
}

/* ---- the file itself ------------------------------------------------------ */

static void test_file_errors(void **state)
{
    char want[PATH_MAX + 128], p[PATH_MAX + 64];
    char *big;
    size_t n = 1024 * 1024 + 1;

    (void)state;
    snprintf(p, sizeof p, "%s/etc/none.conf", tmpdir);
    snprintf(want, sizeof want, "%s: No such file or directory", p);
    expect_fail_path(p, want);

    snprintf(p, sizeof p, "%s/etc", tmpdir);                /* directory */
    snprintf(want, sizeof want, "%s: not a regular file", p);
    expect_fail_path(p, want);

    snprintf(p, sizeof p, "%s/etc/fifo", tmpdir);           /* must not hang */
    assert_int_equal(mkfifo(p, 0600), 0);
    snprintf(want, sizeof want, "%s: not a regular file", p);
    expect_fail_path(p, want);
    unlink(p);

    big = malloc(n + 1);
    assert_non_null(big);
    memset(big, '#', n);
    big[n - 1] = '\n';
    big[n] = '\0';
    expect_text(big, ": file is too large (1048577 bytes; at most 1048576)");
    /* exactly at the limit is read (and then fails for its content) */
    big[n - 2] = '\n';
    big[n - 1] = '\0';
    expect_text(big, ": missing required key 'country'");
    free(big);

    expect_text("country = \"NL\";\nlisten = {\n  port = = 8443;\n};\n",
                ":3: syntax error");
    expect_text("country = \"NL\";\ncountry = \"EC\";\n",
                ":2: duplicate setting name");
    expect_text("# nothing\n", ": missing required key 'country'");
    {   /* a NUL byte would silently cut the file short */
        static const char nul[] = "country = \"NL\";\n\0x = 1;\n";
        assert_int_equal(write_file(conf, nul, sizeof nul - 1), 0);
        snprintf(want, sizeof want, "%s: file contains a NUL byte", conf);
        expect_fail_path(conf, want);
    }
}

/* ---- one mistake each ----------------------------------------------------- */

static void test_unknown_keys(void **state)
{
    (void)state;
    expect_edit("store = \"../var/ecert.db\";",
                "store = \"../var/ecert.db\"; colour = 1;",
                ":5: unknown key 'colour' (allowed: country, listen, tls, "
                "store, schema_dir, limits, partners, mail)");
    expect_edit("port = 8443;", "port = 8443; backlog = 5;",
                ":3: unknown key 'backlog' in listen (allowed: address, port)");
    expect_edit(" ca = \"../pki/ca.crt\";",
                " ca = \"../pki/ca.crt\";\n crl = \"x\";",
                ":5: unknown key 'crl' in tls (allowed: cert, key, ca)");
    expect_edit("workers = 4;", "threads = 4;",
                ":7: unknown key 'threads' in limits (allowed: "
                "max_request_bytes, xml_depth, max_pull, recv_timeout, "
                "send_timeout, idle_timeout, workers, max_connections)");
    expect_edit("country = \"EC\";", "country = \"EC\"; email = \"x@y\";",
                ":10: unknown key 'email' in partner #2 (allowed: id, "
                "country, roles, fingerprint, certificate, mail)");
    /* caught before anything else in the partner */
    expect_edit("id = \"nl-issuer\";", "id = \"nl issuer\"; Id = 1;",
                ":9: unknown key 'Id' in partner #1 (allowed: id, "
                "country, roles, fingerprint, certificate, mail)");
}

static void test_types(void **state)
{
    (void)state;
    expect_edit("port = 8443;", "port = \"8443\";",
                ":3: listen.port must be an integer");
    expect_edit("port = 8443;", "port = 8443.0;",
                ":3: listen.port must be an integer");
    expect_edit("address = \"127.0.0.1\";", "address = 127;",
                ":3: listen.address must be a string");
    expect_edit("address = \"127.0.0.1\";", "address = \"\";",
                ":3: listen.address must not be empty");
    expect_edit("country = \"NL\";\nlisten", "country = 31;\nlisten",
                ":2: country must be a string");
    expect_edit("listen = { address = \"127.0.0.1\"; port = 8443; };",
                "listen = \"127.0.0.1:8443\";",
                ":3: listen must be a group { ... }");
    expect_edit("tls = {", "tls = ( {",
                ":4: syntax error");
    expect_edit("key = \"../pki/server.key\";", "key = true;",
                ":4: tls.key must be a string");
    expect_edit("store = \"../var/ecert.db\";", "store = [ \"a\" ];",
                ":5: store must be a string");
    expect_edit("schema_dir = \"../schema\";", "schema_dir = \"\";",
                ":6: schema_dir must not be empty");
    expect_edit("limits = {", "limits = 5; x = {",
                ":7: unknown key 'x' (allowed: country, listen, tls, store, "
                "schema_dir, limits, partners, mail)");
    {
        char *t = edit("limits = {", "limits = ( 5 );\nx = {");
        char *t2 = replace(t, "x = {", "#");
        free(t);
        expect_text(t2, ":7: limits must be a group { ... }");
        free(t2);
    }
    expect_edit("workers = 4;", "workers = 4.5;",
                ":7: limits.workers must be an integer");
    expect_edit("max_pull = 10;", "max_pull = \"10\";",
                ":7: limits.max_pull must be an integer");
    expect_edit("roles = [ \"submit\" ];", "roles = \"submit\";",
                ":9: partner 'nl-issuer': roles must be an array of strings");
    expect_edit("roles = [ \"submit\" ];", "roles = [ 1 ];",
                ":9: partner 'nl-issuer': roles must be an array of strings");
    expect_edit("id = \"nl-issuer\";", "id = 7;",
                ":9: partner #1: id must be a string");
    expect_edit("country = \"EC\";", "country = [ \"EC\" ];",
                ":10: partner 'ec-nppo': country must be a string");
    expect_edit("certificate = \"../pki/p1.crt\";", "certificate = 1;",
                ":9: partner 'nl-issuer': certificate must be a string");

    /* partners must be a list of groups */
    {
        char text[4096];
        snprintf(text, sizeof text, "%.*s", (int)(strstr(base, "partners") - base),
                 base);
        strcat(text, "partners = { id = \"x\"; };\n");
        expect_text(text, ":8: partners must be a list ( { ... }, ... )");
        snprintf(text, sizeof text, "%.*s", (int)(strstr(base, "partners") - base),
                 base);
        strcat(text, "partners = (\n  \"nl-issuer\" );\n");
        expect_text(text, ":9: partner #1 must be a group { ... }");
        snprintf(text, sizeof text, "%.*s", (int)(strstr(base, "partners") - base),
                 base);
        strcat(text, "partners = ( );\n");
        expect_text(text, ":8: partners is empty; define at least one partner");
    }
}

static void test_ranges(void **state)
{
    (void)state;
    expect_edit("port = 8443;", "port = 0;",
                ":3: listen.port = 0 is out of range 1..65535");
    expect_edit("port = 8443;", "port = 65536;",
                ":3: listen.port = 65536 is out of range 1..65535");
    expect_edit("port = 8443;", "port = -1;",
                ":3: listen.port = -1 is out of range 1..65535");
    expect_edit("max_request_bytes = 1048576;", "max_request_bytes = 1023;",
                ":7: limits.max_request_bytes = 1023 is out of range "
                "1024..1073741824");
    expect_edit("max_request_bytes = 1048576;",
                "max_request_bytes = 5000000000L;",
                ":7: limits.max_request_bytes = 5000000000 is out of range "
                "1024..1073741824");
    expect_edit("xml_depth = 32;", "xml_depth = 7;",
                ":7: limits.xml_depth = 7 is out of range 8..1024");
    expect_edit("xml_depth = 32;", "xml_depth = 1025;",
                ":7: limits.xml_depth = 1025 is out of range 8..1024");
    expect_edit("max_pull = 10;", "max_pull = 0;",
                ":7: limits.max_pull = 0 is out of range 1..1000");
    expect_edit("max_pull = 10;", "max_pull = 1001;",
                ":7: limits.max_pull = 1001 is out of range 1..1000");
    expect_edit("recv_timeout = 11;", "recv_timeout = 0;",
                ":7: limits.recv_timeout = 0 is out of range 1..3600");
    expect_edit("send_timeout = 12;", "send_timeout = 3601;",
                ":7: limits.send_timeout = 3601 is out of range 1..3600");
    expect_edit("idle_timeout = 13;", "idle_timeout = -5;",
                ":7: limits.idle_timeout = -5 is out of range 1..3600");
    expect_edit("workers = 4;", "workers = 257;",
                ":7: limits.workers = 257 is out of range 1..256");
    expect_edit("workers = 4;", "workers = 0;",
                ":7: limits.workers = 0 is out of range 1..256");
    expect_edit("max_connections = 100;", "max_connections = 100001;",
                ":7: limits.max_connections = 100001 is out of range "
                "1..100000");
    expect_edit("max_connections = 100;", "max_connections = 0x186A1;",
                ":7: limits.max_connections = 100001 is out of range "
                "1..100000");
}

static void test_missing(void **state)
{
    (void)state;
    expect_edit("country = \"NL\";\nlisten", "listen",
                ": missing required key 'country'");
    expect_edit("listen = { address = \"127.0.0.1\"; port = 8443; };\n", "",
                ": missing required key 'listen'");
    expect_edit("tls = { cert = \"../pki/server.crt\"; key = "
                "\"../pki/server.key\"; ca = \"../pki/ca.crt\"; };\n", "",
                ": missing required key 'tls'");
    expect_edit("store = \"../var/ecert.db\";\n", "",
                ": missing required key 'store'");
    expect_edit("schema_dir = \"../schema\";\n", "",
                ": missing required key 'schema_dir'");
    {
        char text[4096];
        snprintf(text, sizeof text, "%.*s", (int)(strstr(base, "partners") - base),
                 base);
        expect_text(text, ": missing required key 'partners'");
    }
    expect_edit("address = \"127.0.0.1\"; ", "",
                ":3: missing required key 'address' in listen");
    expect_edit(" port = 8443;", "",
                ":3: missing required key 'port' in listen");
    expect_edit("cert = \"../pki/server.crt\";", "",
                ":4: missing required key 'cert' in tls");
    expect_edit("key = \"../pki/server.key\";", "",
                ":4: missing required key 'key' in tls");
    expect_edit(" ca = \"../pki/ca.crt\";", "",
                ":4: missing required key 'ca' in tls");
    expect_edit("id = \"nl-issuer\"; ", "",
                ":9: missing required key 'id' in partner #1");
    expect_edit("country = \"EC\"; ", "",
                ":10: missing required key 'country' in partner 'ec-nppo'");
    expect_edit("roles = [ \"submit\" ]; ", "",
                ":9: missing required key 'roles' in partner 'nl-issuer'");
    expect_edit(" certificate = \"../pki/p1.crt\";", "",
                ":9: partner 'nl-issuer': missing identity: give fingerprint "
                "or certificate");
}

static void test_partner_errors(void **state)
{
    char from[128], to[256], big[128];

    (void)state;
    /* identity: both */
    snprintf(to, sizeof to, "fingerprint = \"%s\"; certificate = \"../pki/p3.crt\";",
             fp3);
    snprintf(from, sizeof from, "fingerprint = \"sha256:%s\";", fp2);
    expect_edit(from, to,
                ":10: partner 'ec-nppo': give either fingerprint or "
                "certificate, not both");

    /* duplicate id */
    expect_edit("id = \"ec-nppo\";", "id = \"nl-issuer\";",
                ":10: duplicate partner id 'nl-issuer' (first defined at "
                "line 9)");

    /* duplicate identity: the certificate's key given as a fingerprint
     * (other spelling) */
    snprintf(to, sizeof to, "fingerprint = \"SHA256:%s\";", fp1);
    expect_edit(from, to,
                ":10: partner 'ec-nppo' has the same identity as partner "
                "'nl-issuer' (line 9)");
    /* and as the same certificate */
    expect_edit(from, "certificate = \"../pki/p1.crt\";",
                ":10: partner 'ec-nppo' has the same identity as partner "
                "'nl-issuer' (line 9)");

    /* bad fingerprint */
    snprintf(to, sizeof to, "fingerprint = \"sha256:%.63s\";", fp2);
    expect_edit(from, to,
                ":10: partner 'ec-nppo': bad fingerprint 'sha256:%.63s' "
                "(want 64 hex digits, colons optional, optional sha256: "
                "prefix)", fp2);
    snprintf(to, sizeof to, "fingerprint = \"%.62szz\";", fp2);
    expect_edit(from, to,
                ":10: partner 'ec-nppo': bad fingerprint '%.62szz' "
                "(want 64 hex digits, colons optional, optional sha256: "
                "prefix)", fp2);

    /* bad countries */
    expect_edit("country = \"NL\";\nlisten", "country = \"nl\";\nlisten",
                ":2: country 'nl' is not two upper-case letters");
    expect_edit("country = \"NL\";\nlisten", "country = \"NLD\";\nlisten",
                ":2: country 'NLD' is not two upper-case letters");
    expect_edit("country = \"EC\";", "country = \"ECU\";",
                ":10: partner 'ec-nppo': country 'ECU' is not two upper-case "
                "letters");
    expect_edit("country = \"EC\";", "country = \"E1\";",
                ":10: partner 'ec-nppo': country 'E1' is not two upper-case "
                "letters");

    /* bad ids */
    expect_edit("id = \"nl-issuer\";", "id = \"nl issuer\";",
                ":9: partner #1: id 'nl issuer' is not 1 to 63 of "
                "[A-Za-z0-9._-]");
    expect_edit("id = \"nl-issuer\";", "id = \"\";",
                ":9: partner #1: id must not be empty");
    memset(big, 'a', 64);
    big[64] = '\0';
    snprintf(to, sizeof to, "id = \"%s\";", big);
    expect_edit("id = \"nl-issuer\";", to,
                ":9: partner #1: id '%s' is not 1 to 63 of [A-Za-z0-9._-]",
                big);
    {   /* 63 characters is fine */
        struct config *c;
        char *t;
        big[63] = '\0';
        snprintf(to, sizeof to, "id = \"%s\";", big);
        t = edit("id = \"nl-issuer\";", to);
        c = load_ok(t);
        free(t);
        assert_string_equal(c->partners[0].id, big);
        assert_ptr_equal(config_partner_by_id(c, big), &c->partners[0]);
        config_free(c);
    }

    /* roles */
    expect_edit("\"submit\", \"pull\"", "\"submit\", \"admin\"",
                ":10: partner 'ec-nppo': unknown role 'admin' (known: "
                "submit, pull)");
    expect_edit("\"submit\", \"pull\"", "\"Pull\"",
                ":10: partner 'ec-nppo': unknown role 'Pull' (known: "
                "submit, pull)");
    expect_edit("\"submit\", \"pull\"", "\"pull\", \"pull\"",
                ":10: partner 'ec-nppo': role 'pull' is listed twice");
    expect_edit("roles = [ \"submit\" ];", "roles = [ ];",
                ":9: partner 'nl-issuer': roles must name at least one role");

    /* certificate file */
    expect_edit("certificate = \"../pki/p1.crt\";",
                "certificate = \"../pki/nope.crt\";",
                ":9: partner 'nl-issuer': certificate %s/../pki/nope.crt: "
                "No such file or directory", etc);
    expect_edit("certificate = \"../pki/p1.crt\";",
                "certificate = \"../pki/p1.key\";",
                ":9: partner 'nl-issuer': certificate %s/../pki/p1.key: "
                "no PEM certificate in it", etc);
    expect_edit("certificate = \"../pki/p1.crt\";",
                "\n    certificate = \"../pki\";",
                ":10: partner 'nl-issuer': certificate %s/../pki: "
                "not a regular file", etc);
}

static void test_files(void **state)
{
    (void)state;
    expect_edit("cert = \"../pki/server.crt\";", "cert = \"../pki/no.crt\";",
                ":4: tls.cert %s/../pki/no.crt: No such file or directory",
                etc);
    expect_edit("cert = \"../pki/server.crt\";", "cert = \"../pki\";",
                ":4: tls.cert %s/../pki: not a regular file", etc);
    {   /* a FIFO is refused, not waited on */
        char fifo[PATH_MAX + 64];
        snprintf(fifo, sizeof fifo, "%s/pki/fifo", tmpdir);
        assert_int_equal(mkfifo(fifo, 0600), 0);
        expect_edit("ca = \"../pki/ca.crt\";", "ca = \"../pki/fifo\";",
                    ":4: tls.ca %s/../pki/fifo: not a regular file", etc);
        expect_edit("certificate = \"../pki/p1.crt\";",
                    "certificate = \"../pki/fifo\";",
                    ":9: partner 'nl-issuer': certificate %s/../pki/fifo: "
                    "not a regular file", etc);
        unlink(fifo);
    }
    expect_edit("ca = \"../pki/ca.crt\";", "ca = \"../pki/no-ca.crt\";",
                ":4: tls.ca %s/../pki/no-ca.crt: No such file or directory",
                etc);
    expect_edit("key = \"../pki/server.key\";", "key = \"../pki/no.key\";",
                ":4: tls.key %s/../pki/no.key: No such file or directory",
                etc);
    expect_edit("key = \"../pki/server.key\";", "key = \"../pki/open.key\";",
                ":4: key file %s/../pki/open.key is readable by others "
                "(mode 0644); chmod 600 it", etc);
    expect_edit("store = \"../var/ecert.db\";",
                "store = \"../nodir/ecert.db\";",
                ":5: store %s/../nodir/ecert.db: directory %s/../nodir: "
                "No such file or directory", etc, etc);
    expect_edit("store = \"../var/ecert.db\";",
                "store = \"../pki/ca.crt/ecert.db\";",
                ":5: store %s/../pki/ca.crt/ecert.db: %s/../pki/ca.crt is "
                "not a directory", etc, etc);
    expect_edit("store = \"../var/ecert.db\";", "store = \"../var/\";",
                ":5: store %s/../var/ names a directory, not a file", etc);
    expect_edit("schema_dir = \"../schema\";", "schema_dir = \"../empty\";",
                ":6: schema_dir %s/../empty lacks "
                "data/standard/SPSCertificate_17p0.xsd: No such file or "
                "directory", etc);
    expect_edit("schema_dir = \"../schema\";", "schema_dir = \"../nodir\";",
                ":6: schema_dir %s/../nodir: No such file or directory", etc);
    expect_edit("schema_dir = \"../schema\";",
                "schema_dir = \"../pki/ca.crt\";",
                ":6: schema_dir %s/../pki/ca.crt is not a directory", etc);
}

/* ---- mail push ------------------------------------------------------------ */

static void test_mail_good(void **state)
{
    struct config *c = load_ok(mbase);
    char want[PATH_MAX + 64];
    const struct relay *r;
    const struct partner_mail *m;

    (void)state;
    assert_string_equal(c->mail_sender, "ecert@gateway.example");
    assert_string_equal(c->mail_ehlo, "gateway.example");
    snprintf(want, sizeof want, "%s/../pki/signer.crt", etc);
    assert_string_equal(c->sign_cert, want);
    snprintf(want, sizeof want, "%s/../pki/signer.key", etc);
    assert_string_equal(c->sign_key, want);
    snprintf(want, sizeof want, "%s/../pki/ca.crt", etc);
    assert_string_equal(c->sign_chain, want);

    assert_int_equal(c->nrelays, 3);
    r = &c->relays[0];
    assert_string_equal(r->name, "default");
    assert_string_equal(r->host, "127.0.0.1");
    assert_int_equal(r->port, 25);
    assert_int_equal(r->starttls, CFG_STARTTLS_OPTIONAL);
    assert_string_equal(r->ca, want);
    assert_string_equal(r->auth_user, "mailer");
    assert_string_equal(r->auth_password, "pa:ss");
    assert_int_equal(r->concurrency, 3);
    assert_int_equal(r->line, 18);
    r = &c->relays[1];
    assert_string_equal(r->name, "ec-relay");
    assert_string_equal(r->host, "smtp.ec.example");
    assert_int_equal(r->port, 2525);
    assert_int_equal(r->starttls, CFG_STARTTLS_OFF);
    assert_null(r->ca);
    assert_null(r->auth_user);
    assert_null(r->auth_password);
    assert_int_equal(r->concurrency, 1);
    assert_int_equal(r->line, 20);
    r = &c->relays[2];                  /* defaults */
    assert_string_equal(r->name, "v6");
    assert_string_equal(r->host, "::1");
    assert_int_equal(r->port, 25);
    assert_int_equal(r->starttls, CFG_STARTTLS_REQUIRED);
    assert_null(r->ca);
    assert_null(r->auth_user);
    assert_int_equal(r->concurrency, 2);
    assert_int_equal(r->line, 21);

    assert_int_equal(c->retry_first, 30);
    assert_true(c->retry_factor == 1.5);
    assert_int_equal(c->retry_max_delay, 900);
    assert_int_equal(c->retry_max_age, 86400);
    assert_int_equal(c->mail_timeout, 20);
    assert_int_equal(c->mail_workers, 8);

    assert_int_equal(c->npartners, 3);
    assert_null(c->partners[0].mail);
    m = c->partners[1].mail;
    assert_non_null(m);
    assert_int_equal(m->nto, 2);
    assert_string_equal(m->to[0], "nppo@ec.example");
    assert_string_equal(m->to[1], "backup@ec.example");
    snprintf(want, sizeof want, "%s/../pki/p3.crt", etc);
    assert_string_equal(m->certificate, want);
    assert_int_equal(m->relay, 1);
    m = c->partners[2].mail;
    assert_non_null(m);
    assert_int_equal(m->nto, 1);
    assert_string_equal(m->to[0], "pe@pe.example");
    assert_null(m->certificate);
    assert_int_equal(m->relay, 0);      /* the default relay */
    assert_int_equal(c->partners[2].line, 11);
    config_free(c);

    /* no mail group: nothing configured */
    c = load_ok(base);
    assert_null(c->mail_sender);
    assert_null(c->mail_ehlo);
    assert_null(c->sign_cert);
    assert_null(c->relays);
    assert_int_equal(c->nrelays, 0);
    assert_null(c->partners[0].mail);
    assert_null(c->partners[1].mail);
    config_free(c);
}

static void test_mail_defaults(void **state)
{
    struct config *c;
    char *t, *t2;

    (void)state;
    /* no retry, timeout, workers, chain */
    t = medit("  retry = { first_delay = 30; factor = 1.5; max_delay = 900; "
              "max_age = 86400; };\n  timeout = 20;\n  workers = 8;\n", "");
    t2 = replace(t, " chain = \"../pki/ca.crt\";", "");
    free(t);
    c = load_ok(t2);
    free(t2);
    assert_int_equal(c->retry_first, 60);
    assert_true(c->retry_factor == 2.0);
    assert_int_equal(c->retry_max_delay, 3600);
    assert_int_equal(c->retry_max_age, 172800);
    assert_int_equal(c->mail_timeout, 60);
    assert_int_equal(c->mail_workers, 4);
    assert_int_equal(c->mail_batch, 32);
    assert_null(c->sign_chain);
    assert_int_equal(c->nrelays, 3);
    config_free(c);

    /* an empty retry group; an integer factor; bounds */
    t = medit("retry = { first_delay = 30; factor = 1.5; max_delay = 900; "
              "max_age = 86400; };", "retry = { };");
    c = load_ok(t);
    free(t);
    assert_int_equal(c->retry_first, 60);
    assert_true(c->retry_factor == 2.0);
    assert_int_equal(c->retry_max_delay, 3600);
    assert_int_equal(c->retry_max_age, 172800);
    config_free(c);
    t = medit("first_delay = 30; factor = 1.5; max_delay = 900; "
              "max_age = 86400;", "first_delay = 86400; factor = 10; "
              "max_delay = 86400; max_age = 2592000;");
    t2 = replace(t, "timeout = 20;", "timeout = 3600;");
    free(t);
    t = replace(t2, "workers = 8;", "workers = 64;");
    free(t2);
    c = load_ok(t);
    free(t);
    assert_int_equal(c->retry_first, 86400);
    assert_true(c->retry_factor == 10.0);
    assert_int_equal(c->retry_max_delay, 86400);
    assert_int_equal(c->retry_max_age, 2592000);
    assert_int_equal(c->mail_timeout, 3600);
    assert_int_equal(c->mail_workers, 64);
    config_free(c);
    t = medit("first_delay = 30; factor = 1.5; max_delay = 900; "
              "max_age = 86400;", "first_delay = 1; factor = 1.0; "
              "max_delay = 604800; max_age = 60;");
    c = load_ok(t);
    free(t);
    assert_int_equal(c->retry_first, 1);
    assert_true(c->retry_factor == 1.0);
    assert_int_equal(c->retry_max_delay, 604800);
    assert_int_equal(c->retry_max_age, 60);
    config_free(c);

    /* no mail.relay: relays holds only the named ones */
    t = medit("  relay = { host = \"127.0.0.1\"; port = 25; starttls = "
              "\"optional\"; ca = \"../pki/ca.crt\"; auth_file = "
              "\"../pki/relay.auth\"; concurrency = 3; };\n", "");
    t2 = replace(t, "mail = { to = [ \"pe@pe.example\" ]; };",
                 "mail = { to = [ \"pe@pe.example\" ]; relay = \"v6\"; };");
    free(t);
    c = load_ok(t2);
    free(t2);
    assert_int_equal(c->nrelays, 2);
    assert_string_equal(c->relays[0].name, "ec-relay");
    assert_string_equal(c->relays[1].name, "v6");
    assert_int_equal(c->partners[1].mail->relay, 0);
    assert_int_equal(c->partners[2].mail->relay, 1);
    config_free(c);

    /* relay = "default" named explicitly; only mail.relay; port bounds */
    t = medit("    { name = \"ec-relay\"; host = \"smtp.ec.example\"; port = "
              "2525; starttls = \"off\"; concurrency = 1; },\n    { name = "
              "\"v6\"; host = \"::1\"; }\n", "");
    t2 = replace(t, "relay = \"ec-relay\";", "relay = \"default\";");
    free(t);
    t = replace(t2, "port = 25;", "port = 65535; ");
    free(t2);
    t2 = replace(t, "concurrency = 3;", "concurrency = 64;");
    free(t);
    c = load_ok(t2);
    free(t2);
    assert_int_equal(c->nrelays, 1);
    assert_string_equal(c->relays[0].name, "default");
    assert_int_equal(c->relays[0].port, 65535);
    assert_int_equal(c->relays[0].concurrency, 64);
    assert_int_equal(c->partners[1].mail->relay, 0);
    assert_int_equal(c->partners[2].mail->relay, 0);
    config_free(c);

    /* a mail group that no partner uses, with no relay at all */
    t = malloc(strlen(base) + 256);
    assert_non_null(t);
    sprintf(t, "%smail = { sender = \"a@b.example\"; ehlo = \"b.example\";\n"
            "  signing = { cert = \"../pki/signer.crt\"; "
            "key = \"../pki/signer.key\"; }; };\n", base);
    c = load_ok(t);
    free(t);
    assert_string_equal(c->mail_sender, "a@b.example");
    assert_int_equal(c->nrelays, 0);
    assert_null(c->relays);
    config_free(c);

    /* auth files: CRLF, no line end, 16 addresses */
    write_pki("crlf.auth", "u:p w\r\n", 0600);
    write_pki("bare.auth", "user@example:x", 0640);
    t = medit("relay.auth", "crlf.auth");
    c = load_ok(t);
    free(t);
    assert_string_equal(c->relays[0].auth_user, "u");
    assert_string_equal(c->relays[0].auth_password, "p w");
    config_free(c);
    t = medit("relay.auth", "bare.auth");
    c = load_ok(t);
    free(t);
    assert_string_equal(c->relays[0].auth_user, "user@example");
    assert_string_equal(c->relays[0].auth_password, "x");
    config_free(c);
    {
        char to[1024];
        size_t k = (size_t)snprintf(to, sizeof to, "to = [ ");
        for (int i = 0; i < 16; i++)
            k += (size_t)snprintf(to + k, sizeof to - k, "%s\"m%d@x.example\"",
                                  i ? ", " : "", i);
        snprintf(to + k, sizeof to - k, " ];");
        t = medit("to = [ \"pe@pe.example\" ];", to);
        c = load_ok(t);
        free(t);
        assert_int_equal(c->partners[2].mail->nto, 16);
        assert_string_equal(c->partners[2].mail->to[15], "m15@x.example");
        config_free(c);
    }
}

static void test_mail_addresses(void **state)
{
    static const char *const bad[] = {
        "ecert gateway@x.example", "<ecert@x.example>", "ecert@x@y.example",
        "ecert", "ecert@", "@x.example", "ecert@x.example.", "ecert@-x.example",
        "ecert@x_y.example", "a,b@x.example", "a..b@x.example", ".a@x.example",
        "a.@x.example", "\\\"a\\\"@x.example", "a\\tb@x.example",
        "a@x.example\\r\\nBcc: z@evil.example", "caf\xc3\xa9@x.example",
    };
    char from[] = "sender = \"ecert@gateway.example\";";
    char to[512], shown[512], big[300];

    (void)state;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        const char *p = bad[i];
        size_t k = 0;

        /* the message shows the string as parsed */
        for (; *p && k < sizeof shown - 1; p++) {
            if (p[0] == '\\' && p[1]) {
                p++;
                shown[k++] = *p == 't' ? '\t' : *p == 'r' ? '\r' :
                             *p == 'n' ? '\n' : *p;
            } else {
                shown[k++] = *p;
            }
        }
        shown[k] = '\0';
        snprintf(to, sizeof to, "sender = \"%s\";", bad[i]);
        expect_medit(from, to, ":15: mail.sender '%s' is not a mail address "
                     "local@domain", shown);
    }
    /* length: 254 accepted, 255 refused; a 65 character local part */
    memset(big, 'a', sizeof big);
    memcpy(big, "x@", 2);
    for (int i = 60; i < 254; i += 60)
        big[i] = '.';
    big[254] = '\0';
    snprintf(to, sizeof to, "sender = \"%s\";", big);
    {
        char *t = medit(from, to);
        struct config *c = load_ok(t);
        free(t);
        assert_int_equal(strlen(c->mail_sender), 254);
        config_free(c);
    }
    big[254] = 'a';
    big[255] = '\0';
    snprintf(to, sizeof to, "sender = \"%s\";", big);
    expect_medit(from, to, ":15: mail.sender '%s' is not a mail address "
                 "local@domain", big);
    memset(big, 'l', 65);
    snprintf(big + 65, sizeof big - 65, "@x.example");
    snprintf(to, sizeof to, "sender = \"%s\";", big);
    expect_medit(from, to, ":15: mail.sender '%s' is not a mail address "
                 "local@domain", big);

    /* ehlo */
    expect_medit("ehlo = \"gateway.example\";", "ehlo = \".gateway\";",
                 ":16: mail.ehlo '.gateway' is not a host name");
    expect_medit("ehlo = \"gateway.example\";", "ehlo = \"gateway.\";",
                 ":16: mail.ehlo 'gateway.' is not a host name");
    expect_medit("ehlo = \"gateway.example\";", "ehlo = \"-gateway\";",
                 ":16: mail.ehlo '-gateway' is not a host name");
    expect_medit("ehlo = \"gateway.example\";", "ehlo = \"gateway-\";",
                 ":16: mail.ehlo 'gateway-' is not a host name");
    expect_medit("ehlo = \"gateway.example\";", "ehlo = \"gate way\";",
                 ":16: mail.ehlo 'gate way' is not a host name");
    expect_medit("ehlo = \"gateway.example\";", "ehlo = \"a..b\";",
                 ":16: mail.ehlo 'a..b' is not a host name");
    expect_medit("ehlo = \"gateway.example\";", "ehlo = \"[127.0.0.1]\";",
                 ":16: mail.ehlo '[127.0.0.1]' is not a host name");
    expect_medit("ehlo = \"gateway.example\";", "ehlo = \"\";",
                 ":16: mail.ehlo must not be empty");
    memset(big, 'h', 64);
    big[64] = '\0';
    snprintf(to, sizeof to, "ehlo = \"%s.example\";", big);
    expect_medit("ehlo = \"gateway.example\";", to,
                 ":16: mail.ehlo '%s.example' is not a host name", big);
    big[63] = '\0';                     /* a 63 character label is fine */
    snprintf(to, sizeof to, "ehlo = \"%s.Ex-4.example\";", big);
    {
        char *t = medit("ehlo = \"gateway.example\";", to);
        struct config *c = load_ok(t);
        free(t);
        snprintf(to, sizeof to, "%s.Ex-4.example", big);
        assert_string_equal(c->mail_ehlo, to);
        config_free(c);
    }
    /* partner addresses use the same check */
    expect_medit("\"backup@ec.example\"", "\"backup at ec.example\"",
                 ":10: partner 'ec-nppo': mail.to 'backup at ec.example' is "
                 "not a mail address local@domain");
    expect_medit("\"backup@ec.example\"", "\"NPPO@EC.example\"",
                 ":10: partner 'ec-nppo': mail.to lists 'NPPO@EC.example' "
                 "twice");
}

static void test_mail_files(void **state)
{
    (void)state;
    expect_medit(" key = \"../pki/signer.key\";", "",
                 ":17: missing required key 'key' in mail.signing");
    expect_medit("cert = \"../pki/signer.crt\"; ", "",
                 ":17: missing required key 'cert' in mail.signing");
    expect_medit("key = \"../pki/signer.key\";", "key = \"../pki/open.key\";",
                 ":17: key file %s/../pki/open.key is readable by others "
                 "(mode 0644); chmod 600 it", etc);
    expect_medit("key = \"../pki/signer.key\";", "key = \"../pki/no.key\";",
                 ":17: mail.signing.key %s/../pki/no.key: No such file or "
                 "directory", etc);
    expect_medit("cert = \"../pki/signer.crt\";", "cert = \"../pki\";",
                 ":17: mail.signing.cert %s/../pki: not a regular file", etc);
    expect_medit("chain = \"../pki/ca.crt\";", "chain = \"../pki/no.crt\";",
                 ":17: mail.signing.chain %s/../pki/no.crt: No such file or "
                 "directory", etc);
    expect_medit("ca = \"../pki/ca.crt\"; auth", "ca = \"../pki/no.crt\"; auth",
                 ":18: mail.relay.ca %s/../pki/no.crt: No such file or "
                 "directory", etc);
    expect_medit("certificate = \"../pki/p3.crt\";",
                 "certificate = \"../pki/no.crt\";",
                 ":10: partner 'ec-nppo': mail.certificate %s/../pki/no.crt: "
                 "No such file or directory", etc);
    expect_medit("certificate = \"../pki/p3.crt\";",
                 "certificate = \"../pki/p3.key\";",
                 ":10: partner 'ec-nppo': mail.certificate %s/../pki/p3.key: "
                 "no PEM certificate in it", etc);

    /* auth files */
    expect_medit("relay.auth", "open.auth",
                 ":18: auth file %s/../pki/open.auth is readable by others "
                 "(mode 0644); chmod 600 it", etc);
    expect_medit("relay.auth", "no.auth",
                 ":18: mail.relay.auth_file %s/../pki/no.auth: No such file "
                 "or directory", etc);
    {
        static const struct { const char *text, *why; } bad[] = {
            { "", "it is empty" },
            { "\n", "it is empty" },
            { "secretpw\n", "no ':' in it" },
            { ":secretpw\n", "empty user name" },
            { "user:\n", "empty password" },
            { "user:secretpw\nuser2:pw2\n", "more than one line" },
            { "user:secretpw\n\n", "more than one line" },
            { "user:secret\tpw\n", "a control character in it" },
            { "user:secretpw\r\r\n", "a control character in it" },
        };
        for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
            write_pki("bad.auth", bad[i].text, 0600);
            expect_medit("relay.auth", "bad.auth",
                         ":18: mail.relay.auth_file %s/../pki/bad.auth is "
                         "malformed: %s (want one line username:password)",
                         etc, bad[i].why);
        }
        {   /* too large */
            char big[1100];
            memset(big, 'a', sizeof big - 1);
            big[sizeof big - 1] = '\0';
            big[5] = ':';
            write_pki("bad.auth", big, 0600);
            expect_medit("relay.auth", "bad.auth",
                         ":18: mail.relay.auth_file %s/../pki/bad.auth is "
                         "too large (at most 1024 bytes)", etc);
        }
    }
    expect_medit("relay.auth", "..",
                 ":18: mail.relay.auth_file %s/../pki/..: not a regular file",
                 etc);
}

static void test_mail_relays(void **state)
{
    char *t;

    (void)state;
    expect_medit("starttls = \"optional\";", "starttls = \"yes\";",
                 ":18: mail.relay.starttls 'yes' is not one of required, "
                 "optional, off");
    expect_medit("starttls = \"off\";", "starttls = \"OFF\";",
                 ":20: relay 'ec-relay': starttls 'OFF' is not one of "
                 "required, optional, off");
    expect_medit("starttls = \"off\";", "starttls = 0;",
                 ":20: relay 'ec-relay': starttls must be a string");
    expect_medit("relay = \"ec-relay\";", "relay = \"nowhere\";",
                 ":10: partner 'ec-nppo': mail.relay 'nowhere' is not a relay "
                 "(known: default, ec-relay, v6)");
    expect_medit("relay = \"ec-relay\";", "relay = \"EC-RELAY\";",
                 ":10: partner 'ec-nppo': mail.relay 'EC-RELAY' is not a "
                 "relay (known: default, ec-relay, v6)");
    expect_medit("name = \"v6\";", "name = \"ec-relay\";",
                 ":21: duplicate relay name 'ec-relay' (first defined at "
                 "line 20)");
    expect_medit("name = \"v6\";", "name = \"default\";",
                 ":21: mail.relays #2: the name 'default' is reserved for "
                 "mail.relay");
    expect_medit("name = \"v6\";", "name = \"v 6\";",
                 ":21: mail.relays #2: name 'v 6' is not 1 to 63 of "
                 "[A-Za-z0-9._-]");
    expect_medit("name = \"v6\"; ", "",
                 ":21: missing required key 'name' in mail.relays #2");
    expect_medit("host = \"::1\"; ", "",
                 ":21: missing required key 'host' in relay 'v6'");
    expect_medit("host = \"::1\";", "host = \"::1::2\";",
                 ":21: relay 'v6': host '::1::2' is not a host name or IP "
                 "address");
    expect_medit("host = \"127.0.0.1\";", "host = \"relay_1\";",
                 ":18: mail.relay.host 'relay_1' is not a host name or IP "
                 "address");
    expect_medit("host = \"127.0.0.1\"; ", "",
                 ":18: missing required key 'host' in mail.relay");
    expect_medit("port = 25;", "port = 0;",
                 ":18: mail.relay.port = 0 is out of range 1..65535");
    expect_medit("port = 2525;", "port = 65536;",
                 ":20: relay 'ec-relay': port = 65536 is out of range "
                 "1..65535");
    expect_medit("concurrency = 3;", "concurrency = 65;",
                 ":18: mail.relay.concurrency = 65 is out of range 1..64");
    expect_medit("concurrency = 1;", "concurrency = 0;",
                 ":20: relay 'ec-relay': concurrency = 0 is out of range "
                 "1..64");
    expect_medit("relay = { host", "relay = ( { host",
                 ":18: syntax error");
    t = medit("  relay = { host = \"127.0.0.1\";", "  relay = 5; x = { host =");
    {
        char *t2 = replace(t, "concurrency = 3; };", "};");
        free(t);
        t = replace(t2, " x = {", "#");
        free(t2);
    }
    expect_text(t, ":18: mail.relay must be a group { ... }");
    free(t);
    expect_medit("relays = (", "relays = 5; x = (",
                 ":19: unknown key 'x' in mail (allowed: sender, ehlo, "
                 "signing, relay, relays, retry, timeout, workers, batch)");
    t = medit("  relays = (\n", "  relays = { x = 1; };\n");
    {
        char *t2 = replace(t, "    { name = \"ec-relay\"; host = "
                           "\"smtp.ec.example\"; port = 2525; starttls = "
                           "\"off\"; concurrency = 1; },\n    { name = \"v6\";"
                           " host = \"::1\"; }\n  );\n", "");
        free(t);
        expect_text(t2, ":19: mail.relays must be a list ( { ... }, ... )");
        free(t2);
    }
    expect_medit("    { name = \"v6\"; host = \"::1\"; }\n  );", "    \"v6\" );",
                 ":21: mail.relays #2 must be a group { ... }");

    /* the default relay is needed by a partner without relay = */
    t = medit("  relay = { host = \"127.0.0.1\"; port = 25; starttls = "
              "\"optional\"; ca = \"../pki/ca.crt\"; auth_file = "
              "\"../pki/relay.auth\"; concurrency = 3; };\n", "");
    expect_text(t, ":12: partner 'pe-nppo': mail uses the default relay but "
                "there is no mail.relay");
    {
        char *t2 = replace(t, "mail = { to = [ \"pe@pe.example\" ]; };",
                           "mail = { to = [ \"pe@pe.example\" ];\n"
                           "      relay = \"default\"; };");
        expect_text(t2, ":13: partner 'pe-nppo': mail uses the default relay "
                    "but there is no mail.relay");
        free(t2);
    }
    free(t);
}

static void test_mail_retry(void **state)
{
    char *t;

    (void)state;
    expect_medit("max_delay = 900;", "max_delay = 20;",
                 ":23: mail.retry.max_delay = 20 is less than "
                 "mail.retry.first_delay = 30");
    expect_medit("first_delay = 30; factor = 1.5; max_delay = 900;",
                 "first_delay = 7200; factor = 1.5;",
                 ":23: mail.retry.first_delay = 7200 is more than "
                 "mail.retry.max_delay = 3600 (the default)");
    expect_medit("factor = 1.5;", "factor = 0.5;",
                 ":23: mail.retry.factor = 0.5 is out of range 1.0..10.0");
    expect_medit("factor = 1.5;", "factor = 10.01;",
                 ":23: mail.retry.factor = 10.01 is out of range 1.0..10.0");
    expect_medit("factor = 1.5;", "factor = 11;",
                 ":23: mail.retry.factor = 11 is out of range 1.0..10.0");
    expect_medit("factor = 1.5;", "factor = -2;",
                 ":23: mail.retry.factor = -2 is out of range 1.0..10.0");
    expect_medit("factor = 1.5;", "factor = \"2\";",
                 ":23: mail.retry.factor must be a number");
    expect_medit("first_delay = 30;", "first_delay = 0;",
                 ":23: mail.retry.first_delay = 0 is out of range 1..86400");
    expect_medit("first_delay = 30;", "first_delay = 86401;",
                 ":23: mail.retry.first_delay = 86401 is out of range "
                 "1..86400");
    expect_medit("first_delay = 30;", "first_delay = 30.0;",
                 ":23: mail.retry.first_delay must be an integer");
    expect_medit("max_delay = 900;", "max_delay = 604801;",
                 ":23: mail.retry.max_delay = 604801 is out of range "
                 "1..604800");
    expect_medit("max_age = 86400;", "max_age = 59;",
                 ":23: mail.retry.max_age = 59 is out of range 60..2592000");
    expect_medit("max_age = 86400;", "max_age = 2592001;",
                 ":23: mail.retry.max_age = 2592001 is out of range "
                 "60..2592000");
    expect_medit("timeout = 20;", "timeout = 0;",
                 ":24: mail.timeout = 0 is out of range 1..3600");
    expect_medit("timeout = 20;", "timeout = 3601;",
                 ":24: mail.timeout = 3601 is out of range 1..3600");
    expect_medit("workers = 8;", "workers = 65;",
                 ":25: mail.workers = 65 is out of range 1..64");
    expect_medit("workers = 8;", "workers = 0;",
                 ":25: mail.workers = 0 is out of range 1..64");
    t = medit("retry = { first_delay = 30; factor = 1.5; max_delay = 900; "
              "max_age = 86400; };", "retry = [ 1 ];");
    expect_text(t, ":23: mail.retry must be a group { ... }");
    free(t);
}

/* mail.batch: deliveries a push worker claims and sends in one session */
static void test_mail_batch(void **state)
{
    struct config *c;
    char *t;

    (void)state;
    c = load_ok(mbase);                      /* not given: the default */
    assert_int_equal(c->mail_batch, 32);
    config_free(c);
    t = medit("workers = 8;", "workers = 8;\n  batch = 1;");
    c = load_ok(t);
    free(t);
    assert_int_equal(c->mail_batch, 1);
    config_free(c);
    t = medit("workers = 8;", "workers = 8; batch = 256;");
    c = load_ok(t);
    free(t);
    assert_int_equal(c->mail_batch, CFG_MAIL_BATCH_MAX);
    assert_int_equal(c->mail_workers, 8);
    config_free(c);
    expect_medit("workers = 8;", "workers = 8; batch = 0;",
                 ":25: mail.batch = 0 is out of range 1..256");
    expect_medit("workers = 8;", "workers = 8; batch = 257;",
                 ":25: mail.batch = 257 is out of range 1..256");
    expect_medit("workers = 8;", "workers = 8; batch = -32;",
                 ":25: mail.batch = -32 is out of range 1..256");
    expect_medit("workers = 8;", "workers = 8; batch = 8.5;",
                 ":25: mail.batch must be an integer");
    expect_medit("workers = 8;", "workers = 8; batch = \"32\";",
                 ":25: mail.batch must be an integer");
    /* a partner's mail group has no batch of its own */
    expect_medit("mail = { to = [ \"pe@pe.example\" ]; };",
                 "mail = { to = [ \"pe@pe.example\" ]; batch = 4; };",
                 ":12: unknown key 'batch' in partner 'pe-nppo' mail "
                 "(allowed: to, certificate, relay)");
}

static void test_mail_structure(void **state)
{
    char text[4096], to[1024];
    size_t k;

    (void)state;
    /* partner mail without a mail group */
    snprintf(text, sizeof text, "%.*s",
             (int)(strstr(mbase, "mail = {\n") - mbase), mbase);
    expect_text(text, ":10: partner 'ec-nppo' has mail but there is no mail "
                "group");
    strcat(text, "mail = \"ecert@gateway.example\";\n");
    expect_text(text, ":14: mail must be a group { ... }");

    /* unknown keys */
    expect_medit("timeout = 20;", "timeout = 20; bcc = 1;",
                 ":24: unknown key 'bcc' in mail (allowed: sender, ehlo, "
                 "signing, relay, relays, retry, timeout, workers, batch)");
    expect_medit("concurrency = 3;", "concurrency = 3; user = \"u\";",
                 ":18: unknown key 'user' in mail.relay (allowed: host, port, "
                 "starttls, ca, auth_file, concurrency)");
    expect_medit("name = \"v6\";", "name = \"v6\"; password = 1;",
                 ":21: unknown key 'password' in mail.relays #2 (allowed: "
                 "name, host, port, starttls, ca, auth_file, concurrency)");
    expect_medit("max_age = 86400;", "max_age = 86400; jitter = 1;",
                 ":23: unknown key 'jitter' in mail.retry (allowed: "
                 "first_delay, factor, max_delay, max_age)");
    expect_medit("chain = \"../pki/ca.crt\";",
                 "chain = \"../pki/ca.crt\"; pass = 1;",
                 ":17: unknown key 'pass' in mail.signing (allowed: cert, "
                 "key, chain)");
    expect_medit("relay = \"ec-relay\";",
                 "relay = \"ec-relay\"; cc = \"x@y.example\";",
                 ":10: unknown key 'cc' in partner 'ec-nppo' mail (allowed: "
                 "to, certificate, relay)");

    /* missing keys */
    expect_medit("  sender = \"ecert@gateway.example\";\n", "",
                 ":14: missing required key 'sender' in mail");
    expect_medit("  ehlo = \"gateway.example\";\n", "",
                 ":14: missing required key 'ehlo' in mail");
    expect_medit("  signing = { cert = \"../pki/signer.crt\"; key = "
                 "\"../pki/signer.key\"; chain = \"../pki/ca.crt\"; };\n", "",
                 ":14: missing required key 'signing' in mail");
    expect_medit("mail = { to = [ \"pe@pe.example\" ]; };", "mail = { };",
                 ":12: missing required key 'to' in partner 'pe-nppo' mail");

    /* types */
    expect_medit("sender = \"ecert@gateway.example\";", "sender = 1;",
                 ":15: mail.sender must be a string");
    expect_medit("signing = {", "signing = \"x\"; y = {",
                 ":17: unknown key 'y' in mail (allowed: sender, ehlo, "
                 "signing, relay, relays, retry, timeout, workers, batch)");
    {
        char *t = medit("signing = { cert = \"../pki/signer.crt\"; key = "
                        "\"../pki/signer.key\"; chain = \"../pki/ca.crt\"; };",
                        "signing = \"../pki/signer.crt\";");
        expect_text(t, ":17: mail.signing must be a group { ... }");
        free(t);
    }
    expect_medit("mail = { to = [ \"pe@pe.example\" ]; };",
                 "mail = \"pe@pe.example\";",
                 ":12: partner 'pe-nppo': mail must be a group { ... }");
    expect_medit("to = [ \"pe@pe.example\" ];", "to = \"pe@pe.example\";",
                 ":12: partner 'pe-nppo': mail.to must be an array of "
                 "addresses");
    expect_medit("to = [ \"pe@pe.example\" ];", "to = [ 1 ];",
                 ":12: partner 'pe-nppo': mail.to must be an array of "
                 "addresses");
    expect_medit("to = [ \"pe@pe.example\" ];", "to = [ ];",
                 ":12: partner 'pe-nppo': mail.to must list 1 to 16 "
                 "addresses (not 0)");
    k = (size_t)snprintf(to, sizeof to, "to = [ ");
    for (int i = 0; i < 17; i++)
        k += (size_t)snprintf(to + k, sizeof to - k, "%s\"m%d@x.example\"",
                              i ? ", " : "", i);
    snprintf(to + k, sizeof to - k, " ];");
    expect_medit("to = [ \"pe@pe.example\" ];", to,
                 ":12: partner 'pe-nppo': mail.to must list 1 to 16 "
                 "addresses (not 17)");
    expect_medit("relay = \"ec-relay\";", "relay = 1;",
                 ":10: partner 'ec-nppo': mail.relay must be a string");
    expect_medit("certificate = \"../pki/p3.crt\";", "certificate = \"\";",
                 ":10: partner 'ec-nppo': mail.certificate must not be empty");
}

/* No error buffer: still fails cleanly. */
static void test_null_err_buffer(void **state)
{
    struct config *c = (struct config *)1;
    char *t = edit("port = 8443;", "port = 0;");

    (void)state;
    write_conf(t);
    free(t);
    assert_int_equal(config_load(conf, &c, NULL, 0), -1);
    assert_null(c);
    config_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_good),
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_bounds_accepted),
        cmocka_unit_test(test_variants),
        cmocka_unit_test(test_example_style),
        cmocka_unit_test(test_parse_fingerprint),
        cmocka_unit_test(test_spki_of_file),
        cmocka_unit_test(test_file_errors),
        cmocka_unit_test(test_unknown_keys),
        cmocka_unit_test(test_types),
        cmocka_unit_test(test_ranges),
        cmocka_unit_test(test_missing),
        cmocka_unit_test(test_partner_errors),
        cmocka_unit_test(test_files),
        cmocka_unit_test(test_mail_good),
        cmocka_unit_test(test_mail_defaults),
        cmocka_unit_test(test_mail_addresses),
        cmocka_unit_test(test_mail_files),
        cmocka_unit_test(test_mail_relays),
        cmocka_unit_test(test_mail_retry),
        cmocka_unit_test(test_mail_batch),
        cmocka_unit_test(test_mail_structure),
        cmocka_unit_test(test_null_err_buffer),
    };

    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
