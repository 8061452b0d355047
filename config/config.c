/*
 * config.c - load and check the gateway's configuration file.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * The whole file is read into memory (bounded), parsed with libconfig and
 * then walked key by key: every key must be known, of the right type and
 * in range; files it names must be usable.  The first problem found is
 * reported as "file:line: message" and nothing is returned.
 */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <libconfig.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#define CFG_FILE_MAX (1024 * 1024)  /* largest accepted config file */
#define SCHEMA_MAIN "data/standard/SPSCertificate_17p0.xsd"
#define AUTH_FILE_MAX 1024          /* largest accepted relay auth_file */
#define ADDR_MAX 254                /* longest accepted mail address */
#define MAIL_TO_MAX 16              /* addresses per partner */

/* ---- tables --------------------------------------------------------------- */

/* Partner roles by name.  Add new roles (or channels) here only. */
static const struct {
    const char *name;
    unsigned bit;
} role_table[] = {
    { "submit", ROLE_SUBMIT },
    { "pull",   ROLE_PULL },
};
#define NROLES (sizeof role_table / sizeof role_table[0])

static const char *const top_keys[] = {
    "country", "listen", "tls", "store", "schema_dir", "limits", "partners",
    "mail", NULL
};
static const char *const listen_keys[] = { "address", "port", NULL };
static const char *const tls_keys[] = { "cert", "key", "ca", NULL };
static const char *const partner_keys[] = {
    "id", "country", "roles", "fingerprint", "certificate", "mail", NULL
};
static const char *const mail_keys[] = {
    "sender", "ehlo", "signing", "relay", "relays", "retry", "timeout",
    "workers", "batch", NULL
};
static const char *const signing_keys[] = { "cert", "key", "chain", NULL };
static const char *const relay_keys[] = {
    "host", "port", "starttls", "ca", "auth_file", "concurrency", NULL
};
static const char *const named_relay_keys[] = {
    "name", "host", "port", "starttls", "ca", "auth_file", "concurrency", NULL
};
static const char *const retry_keys[] = {
    "first_delay", "factor", "max_delay", "max_age", NULL
};
static const char *const partner_mail_keys[] = {
    "to", "certificate", "relay", NULL
};

/* STARTTLS policies by name (the first is the default). */
static const struct {
    const char *name;
    int value;
} starttls_table[] = {
    { "required", CFG_STARTTLS_REQUIRED },
    { "optional", CFG_STARTTLS_OPTIONAL },
    { "off",      CFG_STARTTLS_OFF },
};
#define NSTARTTLS (sizeof starttls_table / sizeof starttls_table[0])

/* Optional limits: key, lowest, highest, default, where it goes. */
struct limit_def {
    const char *name;
    long long lo, hi, dflt;
    size_t off;
    int is_long;
};
static const struct limit_def limit_table[] = {
    { "max_request_bytes", 1024, 1073741824, 4194304,
      offsetof(struct config, max_request_bytes), 1 },
    { "xml_depth", 8, 1024, 64, offsetof(struct config, xml_depth), 0 },
    { "max_pull", 1, 1000, 50, offsetof(struct config, max_pull), 0 },
    { "recv_timeout", 1, 3600, 30, offsetof(struct config, recv_timeout), 0 },
    { "send_timeout", 1, 3600, 30, offsetof(struct config, send_timeout), 0 },
    { "idle_timeout", 1, 3600, 60, offsetof(struct config, idle_timeout), 0 },
    { "workers", 1, 256, 8, offsetof(struct config, workers), 0 },
    { "max_connections", 1, 100000, 256,
      offsetof(struct config, max_connections), 0 },
};
#define NLIMITS (sizeof limit_table / sizeof limit_table[0])

/* ---- error reporting ------------------------------------------------------ */

struct ctx {
    const char *path;   /* config file as given */
    char *dir;          /* its directory, absolute */
    char *err;
    size_t errlen;
};

/* Report "file:line: message" for setting s (line left out when unknown).
 * Always returns -1. */
static int fail(struct ctx *x, const config_setting_t *s, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int fail(struct ctx *x, const config_setting_t *s, const char *fmt, ...)
{
    char msg[768];
    va_list ap;
    const char *file = x->path;
    int line = 0;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (s) {
        if (config_setting_source_file(s))
            file = config_setting_source_file(s);
        line = config_setting_source_line(s);
    }
    if (!x->err || !x->errlen)
        return -1;
    if (line > 0)
        snprintf(x->err, x->errlen, "%s:%d: %s", file, line, msg);
    else
        snprintf(x->err, x->errlen, "%s: %s", file, msg);
    return -1;
}

static void join_list(char *buf, size_t len, const char *const *names)
{
    size_t used = 0;

    buf[0] = '\0';
    for (size_t i = 0; names[i]; i++) {
        int n = snprintf(buf + used, len - used, "%s%s", i ? ", " : "",
                         names[i]);
        if (n < 0 || (size_t)n >= len - used)
            return;
        used += (size_t)n;
    }
}

/* ---- small checks ------------------------------------------------------- */

static int country_ok(const char *s)
{
    return s[0] >= 'A' && s[0] <= 'Z' && s[1] >= 'A' && s[1] <= 'Z' && !s[2];
}

static int id_ok(const char *s)
{
    size_t n = 0;

    for (; s[n]; n++) {
        char ch = s[n];
        if (!((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') ||
              (ch >= '0' && ch <= '9') || ch == '.' || ch == '_' || ch == '-'))
            return 0;
    }
    return n >= 1 && n < CFG_ID_MAX;
}

/* A host name: 1..253 characters of dot-separated labels, each 1..63 of
 * [A-Za-z0-9-] not starting or ending with '-'. */
static int host_ok(const char *s)
{
    size_t n = strlen(s), label = 0;

    if (n < 1 || n > 253)
        return 0;
    for (size_t i = 0; i <= n; i++) {
        char ch = s[i];

        if (ch == '.' || ch == '\0') {
            if (label == 0 || s[i - 1] == '-')
                return 0;
            label = 0;
            continue;
        }
        if (!((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') ||
              (ch >= '0' && ch <= '9') || ch == '-'))
            return 0;
        if (ch == '-' && label == 0)
            return 0;
        if (++label > 63)
            return 0;
    }
    return 1;
}

/* A plain mail address local@domain, at most ADDR_MAX characters: the
 * local part 1..64 printable ASCII characters without spaces or RFC 5322
 * specials (a dot-atom: no leading, trailing or doubled dot), the domain
 * a host name.  Nothing that could break a header or an SMTP command. */
static int addr_ok(const char *s)
{
    const char *at = strchr(s, '@');

    if (strlen(s) > ADDR_MAX || !at || at == s || at - s > 64 ||
        strchr(at + 1, '@'))
        return 0;
    if (s[0] == '.' || at[-1] == '.')
        return 0;
    for (const char *p = s; p < at; p++) {
        unsigned char ch = (unsigned char)*p;

        if (ch <= ' ' || ch >= 0x7f || strchr("<>()[],;:\\\"", ch) ||
            (ch == '.' && p[1] == '.'))
            return 0;
    }
    return host_ok(at + 1);
}

static int hexval(int ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F')
        return ch - 'A' + 10;
    return -1;
}

int config_parse_fingerprint(const char *s, unsigned char out[32])
{
    unsigned char buf[32];
    size_t digits = 0;
    int prev_colon = 0;

    if (!s)
        return -1;
    if (strncasecmp(s, "sha256:", 7) == 0)
        s += 7;
    for (; *s; s++) {
        if (*s == ':') {
            /* only between two bytes, never doubled */
            if (digits == 0 || digits % 2 || prev_colon)
                return -1;
            prev_colon = 1;
            continue;
        }
        int v = hexval((unsigned char)*s);
        if (v < 0 || digits >= 64)
            return -1;
        if (digits % 2 == 0)
            buf[digits / 2] = (unsigned char)(v << 4);
        else
            buf[digits / 2] |= (unsigned char)v;
        digits++;
        prev_colon = 0;
    }
    if (digits != 64 || prev_colon)
        return -1;
    memcpy(out, buf, 32);
    return 0;
}

void config_hex(const unsigned char in[32], char out[65])
{
    static const char hx[] = "0123456789abcdef";

    for (int i = 0; i < 32; i++) {
        out[2 * i] = hx[in[i] >> 4];
        out[2 * i + 1] = hx[in[i] & 15];
    }
    out[64] = '\0';
}

/* Open a regular file for reading without blocking on FIFOs and the
 * like; NULL with err = "file: why". */
static FILE *open_regular(const char *file, char *err, size_t errlen)
{
    struct stat st;
    FILE *f;
    int fd = open(file, O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);

    if (fd < 0) {
        snprintf(err, errlen, "%s: %s", file, strerror(errno));
        return NULL;
    }
    if (fstat(fd, &st) < 0) {
        snprintf(err, errlen, "%s: %s", file, strerror(errno));
        close(fd);
        return NULL;
    }
    if (!S_ISREG(st.st_mode)) {
        snprintf(err, errlen, "%s: not a regular file", file);
        close(fd);
        return NULL;
    }
    f = fdopen(fd, "r");
    if (!f) {
        snprintf(err, errlen, "%s: %s", file, strerror(errno));
        close(fd);
    }
    return f;
}

int config_spki_of_file(const char *pem, unsigned char out[32],
                        char *err, size_t errlen)
{
    FILE *f;
    X509 *crt;
    unsigned char *der = NULL;
    int len;
    unsigned int mdlen = 0;
    int rc = -1;

    f = open_regular(pem, err, errlen);
    if (!f)
        return -1;
    crt = PEM_read_X509(f, NULL, NULL, NULL);
    fclose(f);
    if (!crt) {
        ERR_clear_error();
        snprintf(err, errlen, "%s: no PEM certificate in it", pem);
        return -1;
    }
    len = i2d_X509_PUBKEY(X509_get_X509_PUBKEY(crt), &der);
    if (len <= 0) {
        snprintf(err, errlen, "%s: cannot encode the public key", pem);
    } else if (!EVP_Digest(der, (size_t)len, out, &mdlen, EVP_sha256(), NULL)
               || mdlen != 32) {
        snprintf(err, errlen, "%s: cannot hash the public key", pem);
    } else {
        rc = 0;
    }
    OPENSSL_free(der);
    X509_free(crt);
    ERR_clear_error();
    return rc;
}

/* ---- typed access ------------------------------------------------------- */

/* Fail on the first member of group g not in allowed[].  where names the
 * group in the message ("" for the top level). */
static int check_keys(struct ctx *x, const config_setting_t *g,
                      const char *where, const char *const *allowed)
{
    int n = config_setting_length(g);

    for (int i = 0; i < n; i++) {
        config_setting_t *m = config_setting_get_elem(g, (unsigned)i);
        const char *name = config_setting_name(m);
        int ok = 0;

        for (size_t k = 0; name && allowed[k]; k++)
            if (strcmp(name, allowed[k]) == 0)
                ok = 1;
        if (!ok) {
            char list[256];
            join_list(list, sizeof list, allowed);
            return fail(x, m, "unknown key '%s'%s%s (allowed: %s)",
                        name ? name : "?", *where ? " in " : "", where, list);
        }
    }
    return 0;
}

/* Member `key` of group g must be a group; where names g. */
static int need_group(struct ctx *x, const config_setting_t *g,
                      const char *key, const char *label,
                      config_setting_t **out)
{
    config_setting_t *s = config_setting_get_member(g, key);

    if (!s)
        return fail(x, config_setting_is_root(g) ? NULL : g,
                    "missing required key '%s'", key);
    if (!config_setting_is_group(s))
        return fail(x, s, "%s must be a group { ... }", label);
    *out = s;
    return 0;
}

/* Member `key` of g as a non-empty string.  label is the name used in
 * messages; where names g for "missing" messages ("" at the top). */
static int get_string(struct ctx *x, const config_setting_t *g,
                      const char *key, const char *label, const char *where,
                      int required, const char **out, config_setting_t **sp)
{
    config_setting_t *s = config_setting_get_member(g, key);

    *out = NULL;
    if (sp)
        *sp = s;
    if (!s) {
        if (!required)
            return 0;
        return fail(x, config_setting_is_root(g) ? NULL : g,
                    "missing required key '%s'%s%s", key,
                    *where ? " in " : "", where);
    }
    if (config_setting_type(s) != CONFIG_TYPE_STRING)
        return fail(x, s, "%s must be a string", label);
    *out = config_setting_get_string(s);
    if (!*out || !**out)
        return fail(x, s, "%s must not be empty", label);
    return 0;
}

static int get_int(struct ctx *x, config_setting_t *s, const char *label,
                   long long lo, long long hi, long long *out)
{
    long long v;

    if (config_setting_type(s) != CONFIG_TYPE_INT &&
        config_setting_type(s) != CONFIG_TYPE_INT64)
        return fail(x, s, "%s must be an integer", label);
    v = config_setting_get_int64(s);
    if (v < lo || v > hi)
        return fail(x, s, "%s = %lld is out of range %lld..%lld", label, v,
                    lo, hi);
    *out = v;
    return 0;
}

/* ---- paths ---------------------------------------------------------------- */

/* p relative to the config file's directory (absolute p unchanged). */
static char *resolve(struct ctx *x, const char *p)
{
    char *r;

    if (p[0] == '/')
        return strdup(p);
    if (asprintf(&r, "%s/%s", x->dir, p) < 0)
        return NULL;
    return r;
}

/* Resolve string member key of g into *dst. */
static int get_path(struct ctx *x, const config_setting_t *g,
                    const char *key, const char *label, const char *where,
                    char **dst, config_setting_t **sp)
{
    const char *v;

    if (get_string(x, g, key, label, where, 1, &v, sp) < 0)
        return -1;
    *dst = resolve(x, v);
    if (!*dst)
        return fail(x, *sp, "out of memory");
    return 0;
}

/* The file must be a readable regular file. */
static int check_readable(struct ctx *x, const config_setting_t *s,
                          const char *label, const char *file)
{
    char e[PATH_MAX + 128];
    FILE *f = open_regular(file, e, sizeof e);

    if (!f)
        return fail(x, s, "%s %s", label, e);
    fclose(f);
    return 0;
}

/* The file (already known to be readable) must not be readable by
 * others; kind names it in the message ("key file"). */
static int check_private(struct ctx *x, const config_setting_t *s,
                         const char *label, const char *kind,
                         const char *file)
{
    struct stat st;

    if (stat(file, &st) < 0)
        return fail(x, s, "%s %s: %s", label, file, strerror(errno));
    if (st.st_mode & (S_IRWXO | S_IWGRP))
        return fail(x, s, "%s %s is %s by others (mode %04o); "
                    "chmod 600 it", kind, file,
                    (st.st_mode & S_IROTH) ? "readable" : "writable",
                    (unsigned)(st.st_mode & 07777));
    return 0;
}

/* Optional string member key of g resolved as a path into *dst (left
 * NULL when absent); the file must be readable. */
static int get_opt_file(struct ctx *x, const config_setting_t *g,
                        const char *key, const char *label, char **dst,
                        config_setting_t **sp)
{
    const char *v;

    if (get_string(x, g, key, label, "", 0, &v, sp) < 0)
        return -1;
    if (!v)
        return 0;
    if (!(*dst = resolve(x, v)))
        return fail(x, *sp, "out of memory");
    return check_readable(x, *sp, label, *dst);
}

/* Optional integer member key of g in lo..hi, else dflt. */
static int get_opt_int(struct ctx *x, const config_setting_t *g,
                       const char *key, const char *label, long long lo,
                       long long hi, long long dflt, int *out)
{
    config_setting_t *s = config_setting_get_member(g, key);
    long long v = dflt;

    if (s && get_int(x, s, label, lo, hi, &v) < 0)
        return -1;
    *out = (int)v;
    return 0;
}

/* Read the SMTP AUTH credentials of relay r from file: one line
 * "username:password" (the password may hold ':'), an optional line end.
 * The file must not be readable by others.  The password never appears
 * in a message, and every copy of it outside r is wiped. */
static int load_auth_file(struct ctx *x, const config_setting_t *s,
                          const char *label, const char *file,
                          struct relay *r)
{
    char buf[AUTH_FILE_MAX + 2];
    const char *why = NULL;
    struct stat st;
    size_t len = 0;
    char *colon;
    int rc = -1;
    int fd = open(file, O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);

    if (fd < 0)
        return fail(x, s, "%s %s: %s", label, file, strerror(errno));
    if (fstat(fd, &st) < 0) {
        fail(x, s, "%s %s: %s", label, file, strerror(errno));
        goto out;
    }
    if (!S_ISREG(st.st_mode)) {
        fail(x, s, "%s %s: not a regular file", label, file);
        goto out;
    }
    if (st.st_mode & (S_IRWXO | S_IWGRP)) {
        fail(x, s, "auth file %s is %s by others (mode %04o); "
             "chmod 600 it", file,
             (st.st_mode & S_IROTH) ? "readable" : "writable",
             (unsigned)(st.st_mode & 07777));
        goto out;
    }
    for (;;) {
        ssize_t n = read(fd, buf + len, AUTH_FILE_MAX + 1 - len);

        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            fail(x, s, "%s %s: %s", label, file, strerror(errno));
            goto out;
        }
        if (n == 0)
            break;
        len += (size_t)n;
        if (len > AUTH_FILE_MAX) {
            fail(x, s, "%s %s is too large (at most %d bytes)", label, file,
                 AUTH_FILE_MAX);
            goto out;
        }
    }
    if (len && buf[len - 1] == '\n')
        len--;
    if (len && buf[len - 1] == '\r')
        len--;
    buf[len] = '\0';
    colon = memchr(buf, ':', len);
    if (!len)
        why = "it is empty";
    else if (memchr(buf, '\n', len))
        why = "more than one line";
    for (size_t i = 0; !why && i < len; i++)
        if ((unsigned char)buf[i] < ' ' || buf[i] == 0x7f)
            why = "a control character in it";
    if (!why && !colon)
        why = "no ':' in it";
    else if (!why && colon == buf)
        why = "empty user name";
    else if (!why && colon + 1 == buf + len)
        why = "empty password";
    if (why) {
        fail(x, s, "%s %s is malformed: %s (want one line "
             "username:password)", label, file, why);
        goto out;
    }
    r->auth_user = strndup(buf, (size_t)(colon - buf));
    r->auth_password = strdup(colon + 1);
    if (!r->auth_user || !r->auth_password) {
        fail(x, s, "out of memory");
        goto out;
    }
    rc = 0;
out:
    OPENSSL_cleanse(buf, sizeof buf);
    close(fd);
    return rc;
}

/* ---- sections --------------------------------------------------------------- */

static int load_listen(struct ctx *x, config_setting_t *root, struct config *c)
{
    config_setting_t *g, *s;
    const char *v;
    long long port;

    if (need_group(x, root, "listen", "listen", &g) < 0 ||
        check_keys(x, g, "listen", listen_keys) < 0 ||
        get_string(x, g, "address", "listen.address", "listen", 1, &v, &s) < 0)
        return -1;
    if (!(c->listen_addr = strdup(v)))
        return fail(x, s, "out of memory");
    s = config_setting_get_member(g, "port");
    if (!s)
        return fail(x, g, "missing required key 'port' in listen");
    if (get_int(x, s, "listen.port", 1, 65535, &port) < 0)
        return -1;
    c->listen_port = (int)port;
    return 0;
}

static int load_tls(struct ctx *x, config_setting_t *root, struct config *c)
{
    config_setting_t *g, *s;
    struct stat st;

    if (need_group(x, root, "tls", "tls", &g) < 0 ||
        check_keys(x, g, "tls", tls_keys) < 0)
        return -1;

    if (get_path(x, g, "cert", "tls.cert", "tls", &c->tls_cert, &s) < 0 ||
        check_readable(x, s, "tls.cert", c->tls_cert) < 0)
        return -1;

    if (get_path(x, g, "key", "tls.key", "tls", &c->tls_key, &s) < 0 ||
        check_readable(x, s, "tls.key", c->tls_key) < 0)
        return -1;
    if (stat(c->tls_key, &st) < 0)
        return fail(x, s, "tls.key %s: %s", c->tls_key, strerror(errno));
    if (st.st_mode & (S_IRWXO | S_IWGRP))
        return fail(x, s, "key file %s is %s by others (mode %04o); "
                    "chmod 600 it", c->tls_key,
                    (st.st_mode & S_IROTH) ? "readable" : "writable",
                    (unsigned)(st.st_mode & 07777));

    if (get_path(x, g, "ca", "tls.ca", "tls", &c->tls_ca, &s) < 0 ||
        check_readable(x, s, "tls.ca", c->tls_ca) < 0)
        return -1;
    return 0;
}

static int load_store(struct ctx *x, config_setting_t *root, struct config *c)
{
    config_setting_t *s;
    char *dir, *slash;
    struct stat st;
    int rc = 0;

    if (get_path(x, root, "store", "store", "", &c->store, &s) < 0)
        return -1;
    slash = strrchr(c->store, '/');
    if (!slash[1])
        return fail(x, s, "store %s names a directory, not a file", c->store);
    dir = strndup(c->store, (size_t)(slash - c->store));
    if (!dir)
        return fail(x, s, "out of memory");
    if (!*dir) {            /* file directly under "/" */
        free(dir);
        return 0;
    }
    if (stat(dir, &st) < 0)
        rc = fail(x, s, "store %s: directory %s: %s", c->store, dir,
                  strerror(errno));
    else if (!S_ISDIR(st.st_mode))
        rc = fail(x, s, "store %s: %s is not a directory", c->store, dir);
    free(dir);
    return rc;
}

static int load_schema_dir(struct ctx *x, config_setting_t *root,
                           struct config *c)
{
    config_setting_t *s;
    struct stat st;
    char *main_xsd;
    int rc = 0;

    if (get_path(x, root, "schema_dir", "schema_dir", "", &c->schema_dir,
                 &s) < 0)
        return -1;
    if (stat(c->schema_dir, &st) < 0)
        return fail(x, s, "schema_dir %s: %s", c->schema_dir,
                    strerror(errno));
    if (!S_ISDIR(st.st_mode))
        return fail(x, s, "schema_dir %s is not a directory", c->schema_dir);
    if (asprintf(&main_xsd, "%s/%s", c->schema_dir, SCHEMA_MAIN) < 0)
        return fail(x, s, "out of memory");
    if (access(main_xsd, R_OK) < 0)
        rc = fail(x, s, "schema_dir %s lacks %s: %s", c->schema_dir,
                  SCHEMA_MAIN, strerror(errno));
    free(main_xsd);
    return rc;
}

static int load_limits(struct ctx *x, config_setting_t *root, struct config *c)
{
    config_setting_t *g = config_setting_get_member(root, "limits");
    const char *allowed[NLIMITS + 1];

    for (size_t i = 0; i < NLIMITS; i++) {
        const struct limit_def *d = &limit_table[i];
        if (d->is_long)
            *(long *)((char *)c + d->off) = (long)d->dflt;
        else
            *(int *)((char *)c + d->off) = (int)d->dflt;
        allowed[i] = d->name;
    }
    allowed[NLIMITS] = NULL;
    if (!g)
        return 0;
    if (!config_setting_is_group(g))
        return fail(x, g, "limits must be a group { ... }");
    if (check_keys(x, g, "limits", allowed) < 0)
        return -1;
    for (size_t i = 0; i < NLIMITS; i++) {
        const struct limit_def *d = &limit_table[i];
        config_setting_t *s = config_setting_get_member(g, d->name);
        char label[64];
        long long v;

        if (!s)
            continue;
        snprintf(label, sizeof label, "limits.%s", d->name);
        if (get_int(x, s, label, d->lo, d->hi, &v) < 0)
            return -1;
        if (d->is_long)
            *(long *)((char *)c + d->off) = (long)v;
        else
            *(int *)((char *)c + d->off) = (int)v;
    }
    return 0;
}

/* One relay: g is mail.relay (named == 0, r->name preset to "default")
 * or the idx-th group of mail.relays (named == 1; the earlier ones are
 * c->relays[first .. first+idx-1]). */
static int load_relay(struct ctx *x, config_setting_t *g, int named,
                      size_t first, size_t idx, struct config *c,
                      struct relay *r)
{
    char who[CFG_ID_MAX + 32], pre[CFG_ID_MAX + 40], label[CFG_ID_MAX + 64];
    const char *v;
    config_setting_t *s;
    long long port = 25;

    if (named) {
        snprintf(who, sizeof who, "mail.relays #%zu", idx + 1);
        if (!config_setting_is_group(g))
            return fail(x, g, "%s must be a group { ... }", who);
        if (check_keys(x, g, who, named_relay_keys) < 0)
            return -1;
        snprintf(label, sizeof label, "%s: name", who);
        if (get_string(x, g, "name", label, who, 1, &v, &s) < 0)
            return -1;
        if (!id_ok(v))
            return fail(x, s, "%s: name '%s' is not 1 to %d of "
                        "[A-Za-z0-9._-]", who, v, CFG_ID_MAX - 1);
        if (strcmp(v, "default") == 0)
            return fail(x, s, "%s: the name 'default' is reserved for "
                        "mail.relay", who);
        for (size_t i = 0; i < idx; i++)
            if (strcmp(c->relays[first + i].name, v) == 0)
                return fail(x, s, "duplicate relay name '%s' (first "
                            "defined at line %d)", v,
                            c->relays[first + i].line);
        snprintf(r->name, sizeof r->name, "%s", v);
        snprintf(who, sizeof who, "relay '%s'", v);
        snprintf(pre, sizeof pre, "%s: ", who);
    } else {
        snprintf(who, sizeof who, "mail.relay");
        snprintf(pre, sizeof pre, "mail.relay.");
        if (!config_setting_is_group(g))
            return fail(x, g, "mail.relay must be a group { ... }");
        if (check_keys(x, g, who, relay_keys) < 0)
            return -1;
    }
    r->line = config_setting_source_line(g);

    snprintf(label, sizeof label, "%shost", pre);
    if (get_string(x, g, "host", label, who, 1, &v, &s) < 0)
        return -1;
    if (!host_ok(v)) {
        unsigned char a6[16];
        if (inet_pton(AF_INET6, v, a6) != 1)
            return fail(x, s, "%s '%s' is not a host name or IP address",
                        label, v);
    }
    if (!(r->host = strdup(v)))
        return fail(x, s, "out of memory");

    snprintf(label, sizeof label, "%sport", pre);
    s = config_setting_get_member(g, "port");
    if (s && get_int(x, s, label, 1, 65535, &port) < 0)
        return -1;
    r->port = (int)port;

    snprintf(label, sizeof label, "%sstarttls", pre);
    if (get_string(x, g, "starttls", label, who, 0, &v, &s) < 0)
        return -1;
    r->starttls = starttls_table[0].value;
    if (v) {
        size_t k;
        for (k = 0; k < NSTARTTLS; k++)
            if (strcmp(v, starttls_table[k].name) == 0)
                break;
        if (k == NSTARTTLS) {
            const char *known[NSTARTTLS + 1];
            char list[128];
            for (size_t i = 0; i < NSTARTTLS; i++)
                known[i] = starttls_table[i].name;
            known[NSTARTTLS] = NULL;
            join_list(list, sizeof list, known);
            return fail(x, s, "%s '%s' is not one of %s", label, v, list);
        }
        r->starttls = starttls_table[k].value;
    }

    snprintf(label, sizeof label, "%sca", pre);
    if (get_opt_file(x, g, "ca", label, &r->ca, &s) < 0)
        return -1;

    snprintf(label, sizeof label, "%sauth_file", pre);
    if (get_string(x, g, "auth_file", label, who, 0, &v, &s) < 0)
        return -1;
    if (v) {
        char *file = resolve(x, v);
        int rc;

        if (!file)
            return fail(x, s, "out of memory");
        rc = load_auth_file(x, s, label, file, r);
        free(file);
        if (rc < 0)
            return -1;
    }

    snprintf(label, sizeof label, "%sconcurrency", pre);
    return get_opt_int(x, g, "concurrency", label, 1, 64, 2,
                       &r->concurrency);
}

static int load_relays(struct ctx *x, config_setting_t *g, struct config *c)
{
    config_setting_t *def = config_setting_get_member(g, "relay");
    config_setting_t *l = config_setting_get_member(g, "relays");
    size_t first = def ? 1 : 0, n = 0;

    if (l) {
        if (!config_setting_is_list(l))
            return fail(x, l, "mail.relays must be a list ( { ... }, ... )");
        n = (size_t)config_setting_length(l);
    }
    if (first + n == 0)
        return 0;
    c->relays = calloc(first + n, sizeof *c->relays);
    if (!c->relays)
        return fail(x, g, "out of memory");
    c->nrelays = first + n;     /* zeroed entries free cleanly */
    if (def) {
        snprintf(c->relays[0].name, sizeof c->relays[0].name, "default");
        if (load_relay(x, def, 0, 0, 0, c, &c->relays[0]) < 0)
            return -1;
    }
    for (size_t i = 0; i < n; i++)
        if (load_relay(x, config_setting_get_elem(l, (unsigned)i), 1, first,
                       i, c, &c->relays[first + i]) < 0)
            return -1;
    return 0;
}

static int load_retry(struct ctx *x, config_setting_t *g, struct config *c)
{
    config_setting_t *r = config_setting_get_member(g, "retry");
    config_setting_t *s, *s_first = NULL, *s_max = NULL;
    double factor = 2.0;

    c->retry_first = 60;
    c->retry_factor = 2.0;
    c->retry_max_delay = 3600;
    c->retry_max_age = 172800;
    if (!r)
        return 0;
    if (!config_setting_is_group(r))
        return fail(x, r, "mail.retry must be a group { ... }");
    if (check_keys(x, r, "mail.retry", retry_keys) < 0)
        return -1;
    if (get_opt_int(x, r, "first_delay", "mail.retry.first_delay", 1, 86400,
                    60, &c->retry_first) < 0)
        return -1;
    s = config_setting_get_member(r, "factor");
    if (s) {
        switch (config_setting_type(s)) {
        case CONFIG_TYPE_INT:
        case CONFIG_TYPE_INT64:
            factor = (double)config_setting_get_int64(s);
            break;
        case CONFIG_TYPE_FLOAT:
            factor = config_setting_get_float(s);
            break;
        default:
            return fail(x, s, "mail.retry.factor must be a number");
        }
        if (!(factor >= 1.0 && factor <= 10.0))
            return fail(x, s, "mail.retry.factor = %g is out of range "
                        "1.0..10.0", factor);
        c->retry_factor = factor;
    }
    if (get_opt_int(x, r, "max_delay", "mail.retry.max_delay", 1, 604800,
                    3600, &c->retry_max_delay) < 0 ||
        get_opt_int(x, r, "max_age", "mail.retry.max_age", 60, 2592000,
                    172800, &c->retry_max_age) < 0)
        return -1;
    s_first = config_setting_get_member(r, "first_delay");
    s_max = config_setting_get_member(r, "max_delay");
    if (c->retry_max_delay < c->retry_first) {
        if (s_max)
            return fail(x, s_max, "mail.retry.max_delay = %d is less than "
                        "mail.retry.first_delay = %d", c->retry_max_delay,
                        c->retry_first);
        return fail(x, s_first, "mail.retry.first_delay = %d is more than "
                    "mail.retry.max_delay = %d (the default)",
                    c->retry_first, c->retry_max_delay);
    }
    return 0;
}

static int load_signing(struct ctx *x, config_setting_t *g, struct config *c)
{
    config_setting_t *sg = config_setting_get_member(g, "signing"), *s;

    if (!sg)
        return fail(x, g, "missing required key 'signing' in mail");
    if (!config_setting_is_group(sg))
        return fail(x, sg, "mail.signing must be a group { ... }");
    if (check_keys(x, sg, "mail.signing", signing_keys) < 0)
        return -1;
    if (get_path(x, sg, "cert", "mail.signing.cert", "mail.signing",
                 &c->sign_cert, &s) < 0 ||
        check_readable(x, s, "mail.signing.cert", c->sign_cert) < 0)
        return -1;
    if (get_path(x, sg, "key", "mail.signing.key", "mail.signing",
                 &c->sign_key, &s) < 0 ||
        check_readable(x, s, "mail.signing.key", c->sign_key) < 0 ||
        check_private(x, s, "mail.signing.key", "key file", c->sign_key) < 0)
        return -1;
    return get_opt_file(x, sg, "chain", "mail.signing.chain",
                        &c->sign_chain, &s);
}

/* The optional `mail` group (mail push).  Absent: c->mail_sender stays
 * NULL and no partner may have mail. */
static int load_mail(struct ctx *x, config_setting_t *root, struct config *c)
{
    config_setting_t *g = config_setting_get_member(root, "mail"), *s;
    const char *v;

    if (!g)
        return 0;
    if (!config_setting_is_group(g))
        return fail(x, g, "mail must be a group { ... }");
    if (check_keys(x, g, "mail", mail_keys) < 0)
        return -1;

    if (get_string(x, g, "sender", "mail.sender", "mail", 1, &v, &s) < 0)
        return -1;
    if (!addr_ok(v))
        return fail(x, s, "mail.sender '%s' is not a mail address "
                    "local@domain", v);
    if (!(c->mail_sender = strdup(v)))
        return fail(x, s, "out of memory");

    if (get_string(x, g, "ehlo", "mail.ehlo", "mail", 1, &v, &s) < 0)
        return -1;
    if (!host_ok(v))
        return fail(x, s, "mail.ehlo '%s' is not a host name", v);
    if (!(c->mail_ehlo = strdup(v)))
        return fail(x, s, "out of memory");

    if (load_signing(x, g, c) < 0 || load_relays(x, g, c) < 0 ||
        load_retry(x, g, c) < 0)
        return -1;
    if (get_opt_int(x, g, "timeout", "mail.timeout", 1, 3600, 60,
                    &c->mail_timeout) < 0 ||
        get_opt_int(x, g, "workers", "mail.workers", 1, 64, 4,
                    &c->mail_workers) < 0 ||
        get_opt_int(x, g, "batch", "mail.batch", 1, CFG_MAIL_BATCH_MAX, 32,
                    &c->mail_batch) < 0)
        return -1;
    return 0;
}

/* The `mail` group of partner p (who = "partner 'id'"), if any. */
static int load_partner_mail(struct ctx *x, config_setting_t *pg,
                             const char *who, struct config *c,
                             struct partner *p)
{
    config_setting_t *g = config_setting_get_member(pg, "mail"), *s;
    char where[CFG_ID_MAX + 32], label[CFG_ID_MAX + 64];
    struct partner_mail *m;
    const char *v;
    int n;

    if (!g)
        return 0;
    if (!c->mail_sender)
        return fail(x, g, "%s has mail but there is no mail group", who);
    if (!config_setting_is_group(g))
        return fail(x, g, "%s: mail must be a group { ... }", who);
    snprintf(where, sizeof where, "%s mail", who);
    if (check_keys(x, g, where, partner_mail_keys) < 0)
        return -1;
    if (!(m = p->mail = calloc(1, sizeof *m)))
        return fail(x, g, "out of memory");

    s = config_setting_get_member(g, "to");
    if (!s)
        return fail(x, g, "missing required key 'to' in %s", where);
    if (!config_setting_is_array(s) && !config_setting_is_list(s))
        return fail(x, s, "%s: mail.to must be an array of addresses", who);
    n = config_setting_length(s);
    if (n < 1 || n > MAIL_TO_MAX)
        return fail(x, s, "%s: mail.to must list 1 to %d addresses (not %d)",
                    who, MAIL_TO_MAX, n);
    if (!(m->to = calloc((size_t)n, sizeof *m->to)))
        return fail(x, s, "out of memory");
    for (int i = 0; i < n; i++) {
        config_setting_t *e = config_setting_get_elem(s, (unsigned)i);

        if (config_setting_type(e) != CONFIG_TYPE_STRING)
            return fail(x, s, "%s: mail.to must be an array of addresses",
                        who);
        v = config_setting_get_string(e);
        if (!addr_ok(v))
            return fail(x, s, "%s: mail.to '%s' is not a mail address "
                        "local@domain", who, v);
        for (size_t k = 0; k < m->nto; k++)
            if (strcasecmp(m->to[k], v) == 0)
                return fail(x, s, "%s: mail.to lists '%s' twice", who, v);
        if (!(m->to[i] = strdup(v)))
            return fail(x, s, "out of memory");
        m->nto = (size_t)i + 1;
    }

    snprintf(label, sizeof label, "%s: mail.certificate", who);
    if (get_string(x, g, "certificate", label, where, 0, &v, &s) < 0)
        return -1;
    if (v) {
        unsigned char sha[32];
        char e[PATH_MAX + 128];

        if (!(m->certificate = resolve(x, v)))
            return fail(x, s, "out of memory");
        if (config_spki_of_file(m->certificate, sha, e, sizeof e) < 0)
            return fail(x, s, "%s %s", label, e);
    }

    snprintf(label, sizeof label, "%s: mail.relay", who);
    if (get_string(x, g, "relay", label, where, 0, &v, &s) < 0)
        return -1;
    if (!v)
        s = g;
    m->relay = -1;
    for (size_t i = 0; i < c->nrelays; i++)
        if (strcmp(c->relays[i].name, v ? v : "default") == 0)
            m->relay = (int)i;
    if (m->relay < 0) {
        char list[512];
        size_t used = 0;

        if (!v || strcmp(v, "default") == 0)
            return fail(x, s, "%s: mail uses the default relay but there is "
                        "no mail.relay", who);
        snprintf(list, sizeof list, "none");
        for (size_t i = 0; i < c->nrelays; i++) {
            int k = snprintf(list + used, sizeof list - used, "%s%s",
                             i ? ", " : "", c->relays[i].name);
            if (k < 0 || (size_t)k >= sizeof list - used)
                break;
            used += (size_t)k;
        }
        return fail(x, s, "%s: mail.relay '%s' is not a relay (known: %s)",
                    who, v, list);
    }
    return 0;
}

static int load_roles(struct ctx *x, config_setting_t *g, const char *who,
                      unsigned *roles)
{
    config_setting_t *s = config_setting_get_member(g, "roles");
    int n;

    *roles = 0;
    if (!s)
        return fail(x, g, "missing required key 'roles' in %s", who);
    if (!config_setting_is_array(s) && !config_setting_is_list(s))
        return fail(x, s, "%s: roles must be an array of strings", who);
    n = config_setting_length(s);
    if (n == 0)
        return fail(x, s, "%s: roles must name at least one role", who);
    for (int i = 0; i < n; i++) {
        config_setting_t *e = config_setting_get_elem(s, (unsigned)i);
        const char *name;
        size_t r;

        if (config_setting_type(e) != CONFIG_TYPE_STRING)
            return fail(x, s, "%s: roles must be an array of strings", who);
        name = config_setting_get_string(e);
        for (r = 0; r < NROLES; r++)
            if (strcmp(name, role_table[r].name) == 0)
                break;
        if (r == NROLES) {
            const char *known[NROLES + 1];
            char list[128];
            for (size_t k = 0; k < NROLES; k++)
                known[k] = role_table[k].name;
            known[NROLES] = NULL;
            join_list(list, sizeof list, known);
            return fail(x, s, "%s: unknown role '%s' (known: %s)", who, name,
                        list);
        }
        if (*roles & role_table[r].bit)
            return fail(x, s, "%s: role '%s' is listed twice", who, name);
        *roles |= role_table[r].bit;
    }
    return 0;
}

static int load_partner(struct ctx *x, config_setting_t *g, size_t idx,
                        struct config *c, struct partner *p)
{
    char who[CFG_ID_MAX + 16], label[CFG_ID_MAX + 32];
    const char *id, *country, *fp, *crt;
    config_setting_t *s_fp, *s_crt, *s;

    snprintf(who, sizeof who, "partner #%zu", idx + 1);
    if (!config_setting_is_group(g))
        return fail(x, g, "%s must be a group { ... }", who);
    if (check_keys(x, g, who, partner_keys) < 0)
        return -1;

    snprintf(label, sizeof label, "%s: id", who);
    if (get_string(x, g, "id", label, who, 1, &id, &s) < 0)
        return -1;
    if (!id_ok(id))
        return fail(x, s, "%s: id '%s' is not 1 to %d of [A-Za-z0-9._-]",
                    who, id, CFG_ID_MAX - 1);
    for (size_t i = 0; i < idx; i++)
        if (strcmp(c->partners[i].id, id) == 0)
            return fail(x, s, "duplicate partner id '%s' (first defined at "
                        "line %d)", id, c->partners[i].line);
    snprintf(p->id, sizeof p->id, "%s", id);
    p->line = config_setting_source_line(g);
    snprintf(who, sizeof who, "partner '%s'", id);

    snprintf(label, sizeof label, "%s: country", who);
    if (get_string(x, g, "country", label, who, 1, &country, &s) < 0)
        return -1;
    if (!country_ok(country))
        return fail(x, s, "%s: country '%s' is not two upper-case letters",
                    who, country);
    memcpy(p->country, country, 3);

    if (load_roles(x, g, who, &p->roles) < 0)
        return -1;

    snprintf(label, sizeof label, "%s: fingerprint", who);
    if (get_string(x, g, "fingerprint", label, who, 0, &fp, &s_fp) < 0)
        return -1;
    snprintf(label, sizeof label, "%s: certificate", who);
    if (get_string(x, g, "certificate", label, who, 0, &crt, &s_crt) < 0)
        return -1;
    if (fp && crt)
        return fail(x, s_crt, "%s: give either fingerprint or certificate, "
                    "not both", who);
    if (!fp && !crt)
        return fail(x, g, "%s: missing identity: give fingerprint or "
                    "certificate", who);
    if (fp) {
        if (config_parse_fingerprint(fp, p->spki_sha256) < 0)
            return fail(x, s_fp, "%s: bad fingerprint '%s' (want 64 hex "
                        "digits, colons optional, optional sha256: prefix)",
                        who, fp);
        s = s_fp;
    } else {
        char e[PATH_MAX + 128];
        char *file = resolve(x, crt);
        int rc;

        if (!file)
            return fail(x, s_crt, "out of memory");
        rc = config_spki_of_file(file, p->spki_sha256, e, sizeof e);
        free(file);
        if (rc < 0)
            return fail(x, s_crt, "%s: certificate %s", who, e);
        s = s_crt;
    }
    for (size_t i = 0; i < idx; i++)
        if (memcmp(c->partners[i].spki_sha256, p->spki_sha256, 32) == 0)
            return fail(x, s, "%s has the same identity as partner '%s' "
                        "(line %d)", who, c->partners[i].id,
                        c->partners[i].line);
    return load_partner_mail(x, g, who, c, p);
}

static int load_partners(struct ctx *x, config_setting_t *root,
                         struct config *c)
{
    config_setting_t *l = config_setting_get_member(root, "partners");
    int n;

    if (!l)
        return fail(x, NULL, "missing required key 'partners'");
    if (!config_setting_is_list(l))
        return fail(x, l, "partners must be a list ( { ... }, ... )");
    n = config_setting_length(l);
    if (n == 0)
        return fail(x, l, "partners is empty; define at least one partner");
    c->partners = calloc((size_t)n, sizeof *c->partners);
    if (!c->partners)
        return fail(x, l, "out of memory");
    c->npartners = (size_t)n;   /* zeroed entries free cleanly */
    for (int i = 0; i < n; i++)
        if (load_partner(x, config_setting_get_elem(l, (unsigned)i),
                         (size_t)i, c, &c->partners[i]) < 0)
            return -1;
    return 0;
}

/* ---- the file --------------------------------------------------------------- */

/* Read a regular file of at most CFG_FILE_MAX bytes, NUL-terminated. */
static char *slurp(struct ctx *x)
{
    struct stat st;
    char *buf;
    size_t len = 0;
    int fd;

    fd = open(x->path, O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) {
        fail(x, NULL, "%s", strerror(errno));
        return NULL;
    }
    if (fstat(fd, &st) < 0) {
        fail(x, NULL, "%s", strerror(errno));
        close(fd);
        return NULL;
    }
    if (!S_ISREG(st.st_mode)) {
        fail(x, NULL, "not a regular file");
        close(fd);
        return NULL;
    }
    if (st.st_size > CFG_FILE_MAX) {
        fail(x, NULL, "file is too large (%lld bytes; at most %d)",
             (long long)st.st_size, CFG_FILE_MAX);
        close(fd);
        return NULL;
    }
    buf = malloc(CFG_FILE_MAX + 2);
    if (!buf) {
        fail(x, NULL, "out of memory");
        close(fd);
        return NULL;
    }
    for (;;) {
        ssize_t r = read(fd, buf + len, CFG_FILE_MAX + 1 - len);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            fail(x, NULL, "%s", strerror(errno));
            goto bad;
        }
        if (r == 0)
            break;
        len += (size_t)r;
        if (len > CFG_FILE_MAX) {
            fail(x, NULL, "file is too large (at most %d bytes)",
                 CFG_FILE_MAX);
            goto bad;
        }
    }
    close(fd);
    buf[len] = '\0';
    if (memchr(buf, '\0', len)) {
        fail(x, NULL, "file contains a NUL byte");
        free(buf);
        return NULL;
    }
    return buf;
bad:
    close(fd);
    free(buf);
    return NULL;
}

/* The directory of the file itself (a symlinked config resolves its
 * relative paths next to the real file). */
static char *abs_dir_of(const char *given)
{
    char *real = realpath(given, NULL);
    const char *path = real != NULL ? real : given;
    const char *slash = strrchr(path, '/');
    char *d, *r;

    if (!slash) {
        free(real);
        return realpath(".", NULL);
    }
    if (slash == path) {
        free(real);
        return strdup("/");
    }
    d = strndup(path, (size_t)(slash - path));
    free(real);
    if (!d)
        return NULL;
    r = realpath(d, NULL);
    free(d);
    return r;
}

int config_load(const char *path, struct config **out, char *err,
                size_t errlen)
{
    struct ctx x = { .path = path, .err = err, .errlen = errlen };
    struct config *c = NULL;
    config_t cfg;
    config_setting_t *root;
    char *text;
    const char *v;
    int rc = -1;

    *out = NULL;
    if (err && errlen)
        err[0] = '\0';
    if (!path || !*path) {
        if (err && errlen)
            snprintf(err, errlen, "no configuration file given");
        return -1;
    }
    text = slurp(&x);
    if (!text)
        return -1;
    x.dir = abs_dir_of(path);
    if (!x.dir) {
        fail(&x, NULL, "cannot resolve its directory: %s", strerror(errno));
        free(text);
        return -1;
    }

    config_init(&cfg);
    config_set_include_dir(&cfg, x.dir);
    if (config_read_string(&cfg, text) != CONFIG_TRUE) {
        const char *f = config_error_file(&cfg);
        const char *t = config_error_text(&cfg);
        if (err && errlen)
            snprintf(err, errlen, "%s:%d: %s", f ? f : path,
                     config_error_line(&cfg), t ? t : "syntax error");
        goto out;
    }
    root = config_root_setting(&cfg);

    c = calloc(1, sizeof *c);
    if (!c || !(c->path = strdup(path))) {
        fail(&x, NULL, "out of memory");
        goto out;
    }
    if (check_keys(&x, root, "", top_keys) < 0)
        goto out;

    if (get_string(&x, root, "country", "country", "", 1, &v, NULL) < 0)
        goto out;
    if (!country_ok(v)) {
        fail(&x, config_setting_get_member(root, "country"),
             "country '%s' is not two upper-case letters", v);
        goto out;
    }
    if (!(c->country = strdup(v))) {
        fail(&x, NULL, "out of memory");
        goto out;
    }
    if (load_listen(&x, root, c) < 0 || load_tls(&x, root, c) < 0 ||
        load_store(&x, root, c) < 0 || load_schema_dir(&x, root, c) < 0 ||
        load_limits(&x, root, c) < 0 || load_mail(&x, root, c) < 0 ||
        load_partners(&x, root, c) < 0)
        goto out;

    *out = c;
    c = NULL;
    rc = 0;
out:
    config_destroy(&cfg);
    config_free(c);
    free(x.dir);
    free(text);
    return rc;
}

void config_free(struct config *c)
{
    if (!c)
        return;
    free(c->path);
    free(c->country);
    free(c->listen_addr);
    free(c->tls_cert);
    free(c->tls_key);
    free(c->tls_ca);
    free(c->store);
    free(c->schema_dir);
    for (size_t i = 0; c->partners && i < c->npartners; i++) {
        struct partner_mail *m = c->partners[i].mail;

        if (!m)
            continue;
        for (size_t k = 0; k < m->nto; k++)
            free(m->to[k]);
        free(m->to);
        free(m->certificate);
        free(m);
    }
    free(c->partners);
    free(c->mail_sender);
    free(c->mail_ehlo);
    free(c->sign_cert);
    free(c->sign_key);
    free(c->sign_chain);
    for (size_t i = 0; c->relays && i < c->nrelays; i++) {
        struct relay *r = &c->relays[i];

        free(r->host);
        free(r->ca);
        free(r->auth_user);
        if (r->auth_password) {
            OPENSSL_cleanse(r->auth_password, strlen(r->auth_password));
            free(r->auth_password);
        }
    }
    free(c->relays);
    free(c);
}

const struct partner *config_partner_by_spki(const struct config *c,
                                             const unsigned char sha[32])
{
    if (!c || !sha)
        return NULL;
    for (size_t i = 0; i < c->npartners; i++)
        if (memcmp(c->partners[i].spki_sha256, sha, 32) == 0)
            return &c->partners[i];
    return NULL;
}

const struct partner *config_partner_by_id(const struct config *c,
                                           const char *id)
{
    if (!c || !id)
        return NULL;
    for (size_t i = 0; i < c->npartners; i++)
        if (strcmp(c->partners[i].id, id) == 0)
            return &c->partners[i];
    return NULL;
}
