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
    return (n > 0 && (size_t)n < sizeof base) ? 0 : -1;
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
                "store, schema_dir, limits, partners)");
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
                "country, roles, fingerprint, certificate)");
    /* caught before anything else in the partner */
    expect_edit("id = \"nl-issuer\";", "id = \"nl issuer\"; Id = 1;",
                ":9: unknown key 'Id' in partner #1 (allowed: id, "
                "country, roles, fingerprint, certificate)");
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
                "schema_dir, limits, partners)");
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
        cmocka_unit_test(test_null_err_buffer),
    };

    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
