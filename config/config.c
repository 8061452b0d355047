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

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#define CFG_FILE_MAX (1024 * 1024)  /* largest accepted config file */
#define SCHEMA_MAIN "data/standard/SPSCertificate_17p0.xsd"

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
    NULL
};
static const char *const listen_keys[] = { "address", "port", NULL };
static const char *const tls_keys[] = { "cert", "key", "ca", NULL };
static const char *const partner_keys[] = {
    "id", "country", "roles", "fingerprint", "certificate", NULL
};

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
    if (st.st_mode & S_IROTH)
        return fail(x, s, "key file %s is readable by others (mode %04o); "
                    "chmod 600 it", c->tls_key,
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
    return 0;
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
    for (int i = 0; i < n; i++) {
        if (load_partner(x, config_setting_get_elem(l, (unsigned)i),
                         (size_t)i, c, &c->partners[i]) < 0)
            return -1;
        c->npartners = (size_t)i + 1;
    }
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

static char *abs_dir_of(const char *path)
{
    const char *slash = strrchr(path, '/');
    char *d, *r;

    if (!slash)
        return realpath(".", NULL);
    if (slash == path)
        return strdup("/");
    d = strndup(path, (size_t)(slash - path));
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
        load_limits(&x, root, c) < 0 || load_partners(&x, root, c) < 0)
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
    free(c->partners);
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
