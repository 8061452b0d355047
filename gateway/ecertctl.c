/*
 * ecertctl.c - the operator's command line tool for the gateway's store.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * NAME
 *      ecertctl - look into and hand certificates into the ecertd store
 *
 * SYNOPSIS
 *      ecertctl [-c CONFIG] [--store PATH] [--json] COMMAND [ARGS]
 *
 *      status
 *      list [--partner P] [--state S] [--channel C] [--limit N]
 *      show TRACKING [--content]
 *      submit FILE --to CC [--type N] [--status N]
 *      validate FILE [--schema-dir DIR]
 *      check
 *      retry TRACKING | retry --partner P
 *      hold TRACKING | hold --partner P
 *      release TRACKING | release --partner P
 *      purge TRACKING --yes
 *
 * DESCRIPTION
 *      ecertctl opens the same SQLite store as ecertd, directly, through
 *      queue.h only.  The store runs in WAL mode, so the read commands
 *      (status, list, show, check) open it read-only and never block the
 *      daemon; submit opens it for writing and hands a certificate in for
 *      this gateway's own country with sender "@operator", through the same
 *      content checks (sps.h) and routing rules (route.h) as a SOAP
 *      hand-in.  It never speaks SOAP.
 *
 *      The repair commands open the store for writing and act on the
 *      deliveries of one tracking number, or with --partner on all the
 *      deliveries of one partner (exactly one of the two):
 *      retry makes the mail deliveries that are waiting, deferred or dead
 *      due now (dead ones come back as deferred, attempts kept); hold
 *      holds every delivery that is not final (a held pull delivery is not
 *      offered, a held mail one is not sent); release puts held ones back
 *      to waiting.  purge (tracking number only, and only with --yes)
 *      deletes the dead or held deliveries and their history; the
 *      certificate stays.  Each prints how many deliveries changed; none
 *      is not an error.  With a configuration loaded, --partner must name
 *      a configured partner; with --store alone any id is taken.
 *
 *      Global options may stand before or after the command.  The
 *      configuration file is -c CONFIG, else $ECERT_CONFIG, else
 *      /etc/ecert-gateway/ecertd.conf; it is read only when the command
 *      needs it (--store spares it for the read commands, --schema-dir
 *      for validate).
 *
 *      Times are printed in UTC as ISO 8601.  With --json every command
 *      prints one JSON document; every string taken from the store goes
 *      through jansson, so it is escaped correctly.  In the human output,
 *      control characters in stored strings are shown as '?'.
 *
 * DIAGNOSTICS
 *      Exit status 0 success, 1 not found (an unknown tracking number, or
 *      an unknown partner), 2 usage error, 3 failure (configuration,
 *      store, file or validation).  Messages go to stderr and name the file, line or
 *      field concerned; configuration errors are printed as config_load()
 *      words them ("file:line: what is wrong").
 *
 * SECURITY
 *      Run by the operator with the rights of the store's owner.  The
 *      content of a certificate is printed only on request (show
 *      --content), and then alone, as raw bytes.  Strings that partners
 *      put into the store (acknowledgement messages) are not trusted: they
 *      are escaped (JSON) or defused (terminal) before they are shown.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <jansson.h>

#include "config.h"
#include "queue.h"
#include "route.h"
#include "sps.h"

#ifndef ECERT_VERSION
#define ECERT_VERSION "0.1.0"
#endif

#define CTL_NAME            "ecertctl"
#define CTL_DEFAULT_CONFIG  "/etc/ecert-gateway/ecertd.conf"
#define CTL_SENDER          "@operator"   /* no partner id has an @ */

/* Limits for validate when no configuration is read. */
#define CTL_DEF_MAX_BYTES   4194304L
#define CTL_DEF_XML_DEPTH   64

#define CTL_DEF_TYPE        851
#define CTL_DEF_STATUS      70

#define CTL_MAX_ARGS        8     /* positional words kept (command + args) */
#define CTL_ERR_MAX         1024
#define CTL_TIME_MAX        32    /* "2026-11-24T10:00:00Z" + NUL, with room */

#define JSON_FLAGS          (JSON_INDENT(2) | JSON_PRESERVE_ORDER)

enum ctl_exit {
    EXIT_OK = 0,
    EXIT_NOTFOUND = 1,
    EXIT_USAGE = 2,
    EXIT_FAIL = 3,
};

/* Command options, as a bit set: each command lists the ones it takes. */
enum {
    OPT_PARTNER    = 1u << 0,
    OPT_STATE      = 1u << 1,
    OPT_CHANNEL    = 1u << 2,
    OPT_LIMIT      = 1u << 3,
    OPT_CONTENT    = 1u << 4,
    OPT_TO         = 1u << 5,
    OPT_TYPE       = 1u << 6,
    OPT_STATUS     = 1u << 7,
    OPT_SCHEMA_DIR = 1u << 8,
    OPT_YES        = 1u << 9,
};

/* getopt_long values of the long-only options. */
enum {
    LO_JSON = 256,
    LO_STORE,
    LO_SCHEMA_DIR,
    LO_PARTNER,
    LO_STATE,
    LO_CHANNEL,
    LO_LIMIT,
    LO_CONTENT,
    LO_TO,
    LO_TYPE,
    LO_STATUS,
    LO_VERSION,
    LO_YES,
};

struct ctl_opts {
    const char *config_path;      /* -c, NULL: $ECERT_CONFIG or default */
    const char *store;            /* --store */
    const char *schema_dir;       /* --schema-dir */
    int json;
    int help, version;
    const char *partner;          /* list, retry, hold, release --partner */
    const char *state_name;       /* list --state */
    const char *channel_name;     /* list --channel */
    const char *limit_arg;        /* list --limit */
    int content;                  /* show --content */
    const char *to;               /* submit --to */
    const char *type_arg;         /* submit --type */
    const char *status_arg;       /* submit --status */
    int yes;                      /* purge --yes */
    unsigned seen;                /* OPT_* given */
    const char *words[CTL_MAX_ARGS];  /* command and its arguments */
    size_t nwords;
};

/* Everything a command may acquire; released once, in main. */
struct ctl {
    struct ctl_opts o;
    struct config *cfg;
    struct queue *q;
    struct sps_schema *schema;
};

struct ctl_command {
    const char *name;
    int (*run)(struct ctl *c);
    unsigned options;             /* OPT_* it accepts */
    size_t nargs;                 /* positional arguments it needs */
    size_t nopt;                  /* optional ones that may follow */
    const char *args;             /* their names, for messages */
};

static const char ctl_hint[] =
    "usage: " CTL_NAME " [-c CONFIG] [--store PATH] [--json] "
    "status|list|show|submit|validate|check|\n"
    "       retry|hold|release|purge [ARGS]  "
    "(" CTL_NAME " --help for more)\n";

static const char ctl_help[] =
    "usage: " CTL_NAME " [OPTIONS] COMMAND [ARGS]\n"
    "\n"
    "Commands:\n"
    "  status                         deliveries by partner, channel and "
    "state;\n"
    "                                 age of the oldest waiting envelope\n"
    "  list [--partner P] [--state S] [--channel C] [--limit N]\n"
    "                                 one line per delivery, oldest first\n"
    "  show TRACKING [--content]      a certificate, its deliveries and "
    "their history;\n"
    "                                 --content: the content bytes alone\n"
    "  submit FILE --to CC [--type N] [--status N]\n"
    "                                 validate FILE and hand it in for this "
    "gateway's\n"
    "                                 country (type 851, status 70 unless "
    "given)\n"
    "  validate FILE [--schema-dir DIR]\n"
    "                                 check FILE against the SPSCertificate "
    "schema\n"
    "  check                          integrity check of the store\n"
    "\n"
    "Repair (the deliveries of one tracking number, or with --partner of one\n"
    "partner; exactly one of the two):\n"
    "  retry TRACKING|--partner P     mail deliveries waiting, deferred or "
    "dead:\n"
    "                                 due now (dead ones come back as "
    "deferred)\n"
    "  hold TRACKING|--partner P      deliveries not final: held (not offered, "
    "not sent)\n"
    "  release TRACKING|--partner P   held deliveries: back to waiting\n"
    "  purge TRACKING --yes           delete the dead or held deliveries of "
    "TRACKING\n"
    "                                 and their history (the certificate "
    "stays)\n"
    "\n"
    "Options (before or after the command):\n"
    "  -c, --config FILE   configuration (default: $ECERT_CONFIG, else "
    CTL_DEFAULT_CONFIG ")\n"
    "      --store PATH    use this store instead of the configured one\n"
    "      --json          print JSON\n"
    "  -h, --help          this text\n"
    "      --version       print the version\n"
    "\n"
    "Exit status: 0 ok, 1 not found, 2 usage error, 3 failure.\n";

static const struct option ctl_long_options[] = {
    { "config",     required_argument, NULL, 'c' },
    { "help",       no_argument,       NULL, 'h' },
    { "json",       no_argument,       NULL, LO_JSON },
    { "store",      required_argument, NULL, LO_STORE },
    { "schema-dir", required_argument, NULL, LO_SCHEMA_DIR },
    { "partner",    required_argument, NULL, LO_PARTNER },
    { "state",      required_argument, NULL, LO_STATE },
    { "channel",    required_argument, NULL, LO_CHANNEL },
    { "limit",      required_argument, NULL, LO_LIMIT },
    { "content",    no_argument,       NULL, LO_CONTENT },
    { "to",         required_argument, NULL, LO_TO },
    { "type",       required_argument, NULL, LO_TYPE },
    { "status",     required_argument, NULL, LO_STATUS },
    { "version",    no_argument,       NULL, LO_VERSION },
    { "yes",        no_argument,       NULL, LO_YES },
    { NULL,         0,                 NULL, 0 },
};

/* Names of the command options, for "not valid for" messages. */
static const struct {
    unsigned bit;
    const char *name;
} ctl_option_names[] = {
    { OPT_PARTNER, "--partner" },   { OPT_STATE, "--state" },
    { OPT_CHANNEL, "--channel" },   { OPT_LIMIT, "--limit" },
    { OPT_CONTENT, "--content" },   { OPT_TO, "--to" },
    { OPT_TYPE, "--type" },         { OPT_STATUS, "--status" },
    { OPT_SCHEMA_DIR, "--schema-dir" },
    { OPT_YES, "--yes" },
};

/* ---- messages -------------------------------------------------------- */

/* ctl_warn - one message line on stderr, prefixed with the program name */
static void ctl_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void
ctl_warn(const char *fmt, ...)
{
    va_list ap;

    fputs(CTL_NAME ": ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

/* ctl_usage - a usage error: the problem, the one-line hint, EXIT_USAGE */
static int ctl_usage(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int
ctl_usage(const char *fmt, ...)
{
    va_list ap;

    fputs(CTL_NAME ": ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    fputs(ctl_hint, stderr);
    return EXIT_USAGE;
}

/* ---- small helpers --------------------------------------------------- */

/* ctl_now_ms - wall clock time, unix milliseconds */
static int64_t
ctl_now_ms(void)
{
    struct timespec ts;

    if (clock_gettime(CLOCK_REALTIME, &ts) != 0)
        return (int64_t)time(NULL) * 1000;
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ctl_time - unix milliseconds as UTC ISO 8601, "-" for 0 (none) */
static const char *
ctl_time(int64_t ms, char buf[CTL_TIME_MAX])
{
    struct tm tm;
    time_t t;

    if (ms <= 0) {
        snprintf(buf, CTL_TIME_MAX, "-");
        return buf;
    }
    t = (time_t)(ms / 1000);
    if (gmtime_r(&t, &tm) == NULL ||
        strftime(buf, CTL_TIME_MAX, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
        snprintf(buf, CTL_TIME_MAX, "@%" PRId64, ms / 1000);
    return buf;
}

/* ctl_safe - a stored string fit for a terminal: control characters
 * become '?', the result is cut to the buffer */
static const char *
ctl_safe(const char *s, char *buf, size_t len)
{
    size_t i;

    if (s == NULL)
        s = "";
    for (i = 0; s[i] != '\0' && i + 1 < len; i++) {
        unsigned char ch = (unsigned char)s[i];

        buf[i] = (ch < 0x20 || ch == 0x7f) ? '?' : (char)ch;
    }
    buf[i] = '\0';
    return buf;
}

/* ctl_text - ctl_safe for the last column of a table: "-" when empty */
static const char *
ctl_text(const char *s, char *buf, size_t len)
{
    return ctl_safe(s != NULL && *s != '\0' ? s : "-", buf, len);
}

/* ctl_parse_long - a whole decimal number within [min, max]; 0 ok, -1 bad */
static int
ctl_parse_long(const char *s, long min, long max, long *out)
{
    char *end;
    long v;

    if (s == NULL || *s == '\0')
        return -1;
    errno = 0;
    v = strtol(s, &end, 10);
    if (errno != 0 || *end != '\0' || v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

static const char *
ctl_level_name(int level)
{
    switch (level) {
    case SPS_SEVERE:
        return "SEVERE";
    case SPS_WARNING:
        return "WARNING";
    case SPS_INFO:
        return "INFO";
    default:
        return "?";
    }
}

/* ---- JSON ------------------------------------------------------------ */

/* ctl_jstr - a JSON string for s; bytes that are not valid UTF-8 (jansson
 * refuses them) are shown as '?' rather than dropping the value */
static json_t *
ctl_jstr(const char *s)
{
    json_t *j;
    char *copy;
    size_t i;

    if (s == NULL)
        return json_null();
    j = json_string(s);
    if (j != NULL)
        return j;
    copy = strdup(s);
    if (copy == NULL)
        return NULL;
    for (i = 0; copy[i] != '\0'; i++)
        if ((unsigned char)copy[i] >= 0x80)
            copy[i] = '?';
    j = json_string(copy);
    free(copy);
    return j;
}

/* ctl_jtime - a time as an ISO 8601 string, null for 0 (none) */
static json_t *
ctl_jtime(int64_t ms)
{
    char buf[CTL_TIME_MAX];

    if (ms <= 0)
        return json_null();
    return json_string(ctl_time(ms, buf));
}

/* ctl_json_print - print and release a document; 0 ok, -1 failed */
static int
ctl_json_print(json_t *doc)
{
    char *text;
    int result = -1;

    if (doc == NULL) {
        ctl_warn("out of memory building the JSON output");
        goto out;
    }
    text = json_dumps(doc, JSON_FLAGS);
    if (text == NULL) {
        ctl_warn("out of memory building the JSON output");
        goto out;
    }
    if (puts(text) == EOF || fflush(stdout) != 0)
        ctl_warn("write to stdout: %s", strerror(errno));
    else
        result = 0;
    free(text);
out:
    json_decref(doc);
    return result;
}

/* ctl_delivery_json - one delivery; with_cert adds its certificate's
 * header fields (list), without them it stands under its certificate
 * (show) */
static json_t *
ctl_delivery_json(const struct q_delivery *d, int with_cert)
{
    json_t *o = json_object();

    if (o == NULL)
        return NULL;
    json_object_set_new(o, "tracking", ctl_jstr(d->tracking));
    json_object_set_new(o, "partner", ctl_jstr(d->partner));
    json_object_set_new(o, "channel", ctl_jstr(q_channel_name(d->channel)));
    json_object_set_new(o, "state", ctl_jstr(q_state_name(d->state)));
    json_object_set_new(o, "attempts", json_integer(d->attempts));
    if (with_cert) {
        json_object_set_new(o, "from", ctl_jstr(d->from));
        json_object_set_new(o, "to", ctl_jstr(d->to));
        json_object_set_new(o, "number", ctl_jstr(d->number));
        json_object_set_new(o, "type", json_integer(d->type));
        json_object_set_new(o, "status", json_integer(d->status));
        json_object_set_new(o, "version", json_integer(d->version));
    }
    json_object_set_new(o, "created", ctl_jtime(d->created_ms));
    json_object_set_new(o, "updated", ctl_jtime(d->updated_ms));
    json_object_set_new(o, "next_attempt", ctl_jtime(d->next_attempt_ms));
    json_object_set_new(o, "pulled", ctl_jtime(d->pulled_ms));
    json_object_set_new(o, "pull_count", json_integer(d->pull_count));
    json_object_set_new(o, "last_error", ctl_jstr(d->last_error));
    return o;
}

/* ---- configuration, store, files -------------------------------------- */

/* ctl_config - load the configuration once; 0 ok, EXIT_FAIL reported */
static int
ctl_config(struct ctl *c)
{
    char err[CTL_ERR_MAX];
    const char *path = c->o.config_path;

    if (c->cfg != NULL)
        return 0;
    if (path == NULL) {
        path = getenv("ECERT_CONFIG");
        if (path == NULL || *path == '\0')
            path = CTL_DEFAULT_CONFIG;
    }
    err[0] = '\0';
    if (config_load(path, &c->cfg, err, sizeof(err)) != 0) {
        c->cfg = NULL;
        if (err[0] == '\0')
            snprintf(err, sizeof(err), "%s: cannot load the configuration",
                     path);
        fprintf(stderr, "%s\n", err);
        return EXIT_FAIL;
    }
    return 0;
}

/* ctl_store_open - open the store named by --store or the configuration;
 * 0 ok, EXIT_FAIL reported */
static int
ctl_store_open(struct ctl *c, int readonly)
{
    char err[CTL_ERR_MAX];
    const char *path = c->o.store;
    int rc;

    if (path == NULL) {
        rc = ctl_config(c);
        if (rc != 0)
            return rc;
        path = c->cfg->store;
    }
    if (path == NULL || *path == '\0') {
        ctl_warn("%s: no store configured (use --store PATH)",
                 c->cfg != NULL ? c->cfg->path : "configuration");
        return EXIT_FAIL;
    }
    err[0] = '\0';
    if (queue_open(&c->q, path, readonly, err, sizeof(err)) != Q_OK) {
        c->q = NULL;
        ctl_warn("store %s: %s", path, err[0] != '\0' ? err : "cannot open");
        return EXIT_FAIL;
    }
    return 0;
}

/* ctl_read_file - all of path into a malloc'd buffer of at most cap bytes;
 * 0 ok, EXIT_FAIL reported (naming the file) */
static int
ctl_read_file(const char *path, size_t cap, unsigned char **buf_r,
              size_t *len_r)
{
    FILE *fp = NULL;
    unsigned char *buf = NULL, *grown;
    size_t size = 0, len = 0, n;
    struct stat st;
    int result = EXIT_FAIL;

    *buf_r = NULL;
    *len_r = 0;
    fp = fopen(path, "rb");
    if (fp == NULL) {
        ctl_warn("%s: %s", path, strerror(errno));
        goto out;
    }
    if (fstat(fileno(fp), &st) != 0) {
        ctl_warn("%s: %s", path, strerror(errno));
        goto out;
    }
    if (S_ISDIR(st.st_mode)) {
        ctl_warn("%s: is a directory", path);
        goto out;
    }
    for (;;) {
        if (len == size) {
            if (size > cap) {
                ctl_warn("%s: larger than the limit of %zu bytes "
                         "(limits.max_request_bytes)", path, cap);
                goto out;
            }
            size = size == 0 ? 65536 : size * 2;
            if (size > cap + 1)
                size = cap + 1;
            grown = realloc(buf, size);
            if (grown == NULL) {
                ctl_warn("%s: out of memory", path);
                goto out;
            }
            buf = grown;
        }
        n = fread(buf + len, 1, size - len, fp);
        len += n;
        if (n == 0)
            break;
    }
    if (ferror(fp)) {
        ctl_warn("%s: read error: %s", path, strerror(errno));
        goto out;
    }
    if (len > cap) {
        ctl_warn("%s: larger than the limit of %zu bytes "
                 "(limits.max_request_bytes)", path, cap);
        goto out;
    }
    *buf_r = buf;
    *len_r = len;
    buf = NULL;
    result = 0;
out:
    free(buf);
    if (fp != NULL)
        fclose(fp);
    return result;
}

/* ---- validation (validate, submit) ------------------------------------ */

/* ctl_limits - the content limits: the configuration's, else defaults */
static void
ctl_limits(const struct ctl *c, struct sps_limits *lim)
{
    lim->max_bytes = (size_t)CTL_DEF_MAX_BYTES;
    lim->max_depth = CTL_DEF_XML_DEPTH;
    if (c->cfg != NULL && c->cfg->max_request_bytes > 0)
        lim->max_bytes = (size_t)c->cfg->max_request_bytes;
    if (c->cfg != NULL && c->cfg->xml_depth > 0)
        lim->max_depth = c->cfg->xml_depth;
}

/* ctl_validate - read path and validate it as bytes against the schema;
 * res is filled.  0 done (res says valid or not), EXIT_FAIL reported */
static int
ctl_validate(struct ctl *c, const char *path, unsigned char **doc_r,
             size_t *len_r, struct sps_result *res)
{
    char err[CTL_ERR_MAX];
    struct sps_limits lim;
    const char *dir = c->o.schema_dir;
    int rc;

    if (dir == NULL && c->cfg != NULL)
        dir = c->cfg->schema_dir;
    if (dir == NULL || *dir == '\0') {
        ctl_warn("no schema directory (schema_dir in the configuration, "
                 "or --schema-dir DIR)");
        return EXIT_FAIL;
    }
    ctl_limits(c, &lim);
    rc = ctl_read_file(path, lim.max_bytes, doc_r, len_r);
    if (rc != 0)
        return rc;
    sps_init();
    err[0] = '\0';
    if (sps_schema_load(dir, &c->schema, err, sizeof(err)) != 0) {
        c->schema = NULL;
        ctl_warn("schema %s: %s", dir, err[0] != '\0' ? err : "cannot load");
        return EXIT_FAIL;
    }
    memset(res, 0, sizeof(*res));
    sps_validate(c->schema, &lim, *doc_r, *len_r, 0, res);
    return 0;
}

/* ctl_print_issues - each issue as "FILE:LINE: LEVEL field: message" */
static void
ctl_print_issues(FILE *fp, const char *path, const struct sps_result *res)
{
    char field[sizeof(res->issues[0].field)];
    char msg[sizeof(res->issues[0].msg)];
    size_t i, shown = 0;

    for (i = 0; i < res->nissues; i++) {
        const struct sps_issue *is = &res->issues[i];

        if (is->line > 0)
            fprintf(fp, "%s:%d: ", path, is->line);
        else
            fprintf(fp, "%s: ", path);
        fprintf(fp, "%s %s: %s\n", ctl_level_name(is->level),
                ctl_safe(is->field, field, sizeof(field)),
                ctl_safe(is->msg, msg, sizeof(msg)));
        if (is->level == SPS_SEVERE)
            shown++;
    }
    if (res->nsevere > shown)
        fprintf(fp, "%s: SEVERE (more): %zu further severe issues not "
                "shown\n", path, res->nsevere - shown);
}

static json_t *
ctl_issues_json(const struct sps_result *res)
{
    json_t *arr = json_array();
    size_t i;

    if (arr == NULL)
        return NULL;
    for (i = 0; i < res->nissues; i++) {
        const struct sps_issue *is = &res->issues[i];
        json_t *o = json_object();

        if (o == NULL)
            break;
        json_object_set_new(o, "level", json_string(ctl_level_name(is->level)));
        json_object_set_new(o, "line", json_integer(is->line));
        json_object_set_new(o, "field", ctl_jstr(is->field));
        json_object_set_new(o, "message", ctl_jstr(is->msg));
        json_array_append_new(arr, o);
    }
    return arr;
}

/* ---- status ----------------------------------------------------------- */

struct status_row {
    char *partner;
    int channel, state;
    int64_t count, oldest_ms, next_attempt_ms;
};

struct status_acc {
    struct status_row *rows;
    size_t n, size;
    int oom;
};

static int
status_collect(void *arg, const struct q_status_row *r)
{
    struct status_acc *acc = arg;
    struct status_row *row;

    if (acc->n == acc->size) {
        size_t size = acc->size == 0 ? 16 : acc->size * 2;
        struct status_row *grown = realloc(acc->rows, size * sizeof(*grown));

        if (grown == NULL) {
            acc->oom = 1;
            return 1;
        }
        acc->rows = grown;
        acc->size = size;
    }
    row = &acc->rows[acc->n];
    row->partner = strdup(r->partner != NULL ? r->partner : "");
    if (row->partner == NULL) {
        acc->oom = 1;
        return 1;
    }
    row->channel = r->channel;
    row->state = r->state;
    row->count = r->count;
    row->oldest_ms = r->oldest_ms;
    row->next_attempt_ms = r->next_attempt_ms;
    acc->n++;
    return 0;
}

/* status_waiting - a row that is still in the queue (not final) */
static int
status_waiting(const struct status_row *r)
{
    return r->count > 0 && r->oldest_ms > 0 && !q_state_final(r->state);
}

/* status_age - seconds since ms, never negative */
static int64_t
status_age(int64_t now_ms, int64_t ms)
{
    return now_ms > ms ? (now_ms - ms) / 1000 : 0;
}

/* status_partner_oldest - the oldest waiting creation time of the partner
 * of row i, if row i is the first row of that partner; else 0 */
static int64_t
status_partner_oldest(const struct status_acc *acc, size_t i)
{
    int64_t oldest = 0;
    size_t j;

    for (j = 0; j < i; j++)
        if (strcmp(acc->rows[j].partner, acc->rows[i].partner) == 0)
            return 0;
    for (j = i; j < acc->n; j++) {
        const struct status_row *r = &acc->rows[j];

        if (strcmp(r->partner, acc->rows[i].partner) != 0 ||
            !status_waiting(r))
            continue;
        if (oldest == 0 || r->oldest_ms < oldest)
            oldest = r->oldest_ms;
    }
    return oldest;
}

static int
status_print_json(const struct status_acc *acc, int64_t now, int64_t oldest)
{
    json_t *doc = json_object(), *arr = json_array(), *by = json_object();
    size_t i;

    if (doc == NULL || arr == NULL || by == NULL) {
        json_decref(arr);
        json_decref(by);
        return ctl_json_print(NULL);
    }
    for (i = 0; i < acc->n; i++) {
        const struct status_row *r = &acc->rows[i];
        json_t *o = json_object();
        int64_t p_oldest;

        if (o == NULL)
            break;
        json_object_set_new(o, "partner", ctl_jstr(r->partner));
        json_object_set_new(o, "channel", ctl_jstr(q_channel_name(r->channel)));
        json_object_set_new(o, "state", ctl_jstr(q_state_name(r->state)));
        json_object_set_new(o, "count", json_integer(r->count));
        json_object_set_new(o, "oldest", ctl_jtime(r->oldest_ms));
        /* mail rows always carry it (null: nothing scheduled) */
        if (r->channel == Q_CH_SMTP || r->next_attempt_ms > 0)
            json_object_set_new(o, "next_attempt",
                                ctl_jtime(r->next_attempt_ms));
        json_array_append_new(arr, o);
        p_oldest = status_partner_oldest(acc, i);
        if (p_oldest > 0)
            json_object_set_new(by, r->partner,
                                json_integer(status_age(now, p_oldest)));
    }
    json_object_set_new(doc, "deliveries", arr);
    json_object_set_new(doc, "oldest_waiting_seconds",
                        oldest > 0 ? json_integer(status_age(now, oldest))
                                   : json_null());
    json_object_set_new(doc, "oldest_waiting_seconds_by_partner", by);
    return ctl_json_print(doc);
}

static void
status_print_text(const struct status_acc *acc, int64_t now, int64_t oldest)
{
    char partner[Q_PARTNER_MAX], t1[CTL_TIME_MAX], t2[CTL_TIME_MAX];
    size_t i;

    if (acc->n == 0) {
        printf("no deliveries\n");
        return;
    }
    printf("%-16s %-7s %-18s %8s  %-20s  %s\n", "PARTNER", "CHANNEL",
           "STATE", "COUNT", "OLDEST", "NEXT ATTEMPT");
    for (i = 0; i < acc->n; i++) {
        const struct status_row *r = &acc->rows[i];

        printf("%-16s %-7s %-18s %8" PRId64 "  %-20s  %s\n",
               ctl_safe(r->partner, partner, sizeof(partner)),
               q_channel_name(r->channel), q_state_name(r->state), r->count,
               ctl_time(r->oldest_ms, t1), ctl_time(r->next_attempt_ms, t2));
    }
    printf("\n");
    for (i = 0; i < acc->n; i++) {
        int64_t p_oldest = status_partner_oldest(acc, i);

        if (p_oldest > 0)
            printf("oldest waiting for %s: %" PRId64 "s (since %s)\n",
                   ctl_safe(acc->rows[i].partner, partner, sizeof(partner)),
                   status_age(now, p_oldest), ctl_time(p_oldest, t1));
    }
    if (oldest > 0)
        printf("oldest waiting overall: %" PRId64 "s (since %s)\n",
               status_age(now, oldest), ctl_time(oldest, t1));
    else
        printf("nothing waiting\n");
}

static int
cmd_status(struct ctl *c)
{
    char err[CTL_ERR_MAX];
    struct status_acc acc = { NULL, 0, 0, 0 };
    int64_t now, oldest = 0;
    int rc;
    size_t i;

    rc = ctl_store_open(c, 1);
    if (rc != 0)
        goto out;
    err[0] = '\0';
    if (queue_op_status(c->q, status_collect, &acc, err, sizeof(err)) != Q_OK) {
        ctl_warn("status: %s", err);
        rc = EXIT_FAIL;
        goto out;
    }
    if (acc.oom) {
        ctl_warn("status: out of memory");
        rc = EXIT_FAIL;
        goto out;
    }
    now = ctl_now_ms();
    for (i = 0; i < acc.n; i++)
        if (status_waiting(&acc.rows[i]) &&
            (oldest == 0 || acc.rows[i].oldest_ms < oldest))
            oldest = acc.rows[i].oldest_ms;
    if (c->o.json)
        rc = status_print_json(&acc, now, oldest) == 0 ? EXIT_OK : EXIT_FAIL;
    else
        status_print_text(&acc, now, oldest);
out:
    for (i = 0; i < acc.n; i++)
        free(acc.rows[i].partner);
    free(acc.rows);
    return rc;
}

/* ---- list ------------------------------------------------------------- */

struct list_acc {
    json_t *arr;          /* --json */
    size_t n;
    int oom;
};

static int
list_row(void *arg, const struct q_delivery *d)
{
    struct list_acc *acc = arg;
    char tracking[Q_TRACKING_MAX], partner[Q_PARTNER_MAX];
    char number[Q_NUMBER_MAX], lasterr[Q_ERROR_MAX];
    char from[8], to[8], route[24], ts[16], created[CTL_TIME_MAX];

    if (acc->arr != NULL) {
        json_t *o = ctl_delivery_json(d, 1);

        if (o == NULL || json_array_append_new(acc->arr, o) != 0) {
            acc->oom = 1;
            return 1;
        }
        acc->n++;
        return 0;
    }
    if (acc->n == 0)
        printf("%-28s %-16s %-7s %-18s %4s %-8s %-20s %-7s %-20s %s\n",
               "TRACKING", "PARTNER", "CHANNEL", "STATE", "ATT", "ROUTE",
               "NUMBER", "TYPE", "CREATED", "LAST ERROR");
    snprintf(route, sizeof(route), "%s->%s",
             ctl_safe(d->from, from, sizeof(from)),
             ctl_safe(d->to, to, sizeof(to)));
    snprintf(ts, sizeof(ts), "%d/%d", d->type, d->status);
    printf("%-28s %-16s %-7s %-18s %4d %-8s %-20s %-7s %-20s %s\n",
           ctl_safe(d->tracking, tracking, sizeof(tracking)),
           ctl_safe(d->partner, partner, sizeof(partner)),
           q_channel_name(d->channel), q_state_name(d->state), d->attempts,
           route, ctl_safe(d->number, number, sizeof(number)), ts,
           ctl_time(d->created_ms, created),
           ctl_text(d->last_error, lasterr, sizeof(lasterr)));
    acc->n++;
    return 0;
}

/* list_valid_names - "a, b, c" of the states (channels = 0) or channels */
static void
list_valid_names(int channels, char *buf, size_t len)
{
    size_t used = 0;
    int i;

    buf[0] = '\0';
    if (channels) {
        snprintf(buf, len, "%s, %s", q_channel_name(Q_CH_PULL),
                 q_channel_name(Q_CH_SMTP));
        return;
    }
    for (i = 0; i < Q_NSTATES && used < len; i++) {
        int n = snprintf(buf + used, len - used, "%s%s", i > 0 ? ", " : "",
                         q_state_name(i));

        if (n < 0)
            break;
        used += (size_t)n;
    }
}

static int
cmd_list(struct ctl *c)
{
    char err[CTL_ERR_MAX], names[256];
    struct q_filter f = { NULL, -1, 0, 0 };
    struct list_acc acc = { NULL, 0, 0 };
    long limit;
    int rc;

    f.partner = c->o.partner;
    if (c->o.state_name != NULL) {
        f.state = q_state_parse(c->o.state_name);
        if (f.state < 0) {
            list_valid_names(0, names, sizeof(names));
            return ctl_usage("--state: unknown state '%s' (valid: %s)",
                             c->o.state_name, names);
        }
    }
    if (c->o.channel_name != NULL) {
        f.channel = q_channel_parse(c->o.channel_name);
        if (f.channel <= 0) {
            list_valid_names(1, names, sizeof(names));
            return ctl_usage("--channel: unknown channel '%s' (valid: %s)",
                             c->o.channel_name, names);
        }
    }
    if (c->o.limit_arg != NULL) {
        if (ctl_parse_long(c->o.limit_arg, 1, INT_MAX, &limit) != 0)
            return ctl_usage("--limit: '%s' is not a positive number",
                             c->o.limit_arg);
        f.limit = (int)limit;
    }
    rc = ctl_store_open(c, 1);
    if (rc != 0)
        goto out;
    if (c->o.json) {
        acc.arr = json_array();
        if (acc.arr == NULL) {
            ctl_warn("list: out of memory");
            rc = EXIT_FAIL;
            goto out;
        }
    }
    err[0] = '\0';
    if (queue_op_list(c->q, &f, list_row, &acc, err, sizeof(err)) != Q_OK) {
        ctl_warn("list: %s", err);
        rc = EXIT_FAIL;
        goto out;
    }
    if (acc.oom) {
        ctl_warn("list: out of memory");
        rc = EXIT_FAIL;
        goto out;
    }
    if (acc.arr != NULL) {
        rc = ctl_json_print(acc.arr) == 0 ? EXIT_OK : EXIT_FAIL;
        acc.arr = NULL;
    } else if (acc.n == 0) {
        printf("no deliveries\n");
    }
out:
    json_decref(acc.arr);
    return rc;
}

/* ---- show ------------------------------------------------------------- */

struct show_acc {
    int want_content, json;
    json_t *doc, *deliveries, *history;   /* --json */
    unsigned char *content;               /* --content: a copy */
    size_t content_len;
    int have_cert;
    size_t ndeliveries, nevents;
    int oom;
};

static int
show_cert(void *arg, const struct q_envelope *e)
{
    struct show_acc *acc = arg;
    char hex[65], buf[Q_NUMBER_MAX], t[CTL_TIME_MAX];

    acc->have_cert = 1;
    if (acc->want_content) {
        acc->content_len = e->content != NULL ? e->content_len : 0;
        acc->content = malloc(acc->content_len > 0 ? acc->content_len : 1);
        if (acc->content == NULL) {
            acc->oom = 1;
            return 1;
        }
        if (acc->content_len > 0)
            memcpy(acc->content, e->content, acc->content_len);
        return 0;
    }
    if (e->sha256 != NULL)
        config_hex(e->sha256, hex);
    else
        snprintf(hex, sizeof(hex), "-");
    if (acc->json) {
        json_t *o = acc->doc;

        json_object_set_new(o, "tracking", ctl_jstr(e->tracking));
        json_object_set_new(o, "from", ctl_jstr(e->from));
        json_object_set_new(o, "to", ctl_jstr(e->to));
        json_object_set_new(o, "number", ctl_jstr(e->number));
        json_object_set_new(o, "type", json_integer(e->type));
        json_object_set_new(o, "status", json_integer(e->status));
        json_object_set_new(o, "version", json_integer(e->version));
        json_object_set_new(o, "sender", ctl_jstr(e->sender));
        json_object_set_new(o, "received", ctl_jtime(e->received_ms));
        json_object_set_new(o, "size", json_integer((json_int_t)e->content_len));
        json_object_set_new(o, "sha256", json_string(hex));
        return 0;
    }
    printf("tracking:  %s\n", ctl_safe(e->tracking, buf, sizeof(buf)));
    printf("from:      %s\n", ctl_safe(e->from, buf, sizeof(buf)));
    printf("to:        %s\n", ctl_safe(e->to, buf, sizeof(buf)));
    printf("number:    %s\n", ctl_safe(e->number, buf, sizeof(buf)));
    printf("type:      %d\n", e->type);
    printf("status:    %d\n", e->status);
    printf("version:   %d\n", e->version);
    printf("sender:    %s\n", ctl_safe(e->sender, buf, sizeof(buf)));
    printf("received:  %s\n", ctl_time(e->received_ms, t));
    printf("size:      %zu\n", e->content_len);
    printf("sha256:    %s\n", hex);
    return 0;
}

static int
show_delivery(void *arg, const struct q_delivery *d)
{
    struct show_acc *acc = arg;
    char partner[Q_PARTNER_MAX], lasterr[Q_ERROR_MAX];
    char t1[CTL_TIME_MAX], t2[CTL_TIME_MAX], t3[CTL_TIME_MAX];
    char t4[CTL_TIME_MAX];

    if (acc->want_content)
        return 0;
    if (acc->json) {
        json_t *o = ctl_delivery_json(d, 0);

        if (o == NULL || json_array_append_new(acc->deliveries, o) != 0) {
            acc->oom = 1;
            return 1;
        }
        acc->ndeliveries++;
        return 0;
    }
    if (acc->ndeliveries++ == 0)
        printf("\ndeliveries:\n  %-16s %-7s %-18s %4s  %-20s  %-20s  "
               "%-20s  %-20s %5s  %s\n", "PARTNER", "CHANNEL", "STATE",
               "ATT", "CREATED", "UPDATED", "NEXT ATTEMPT", "PULLED",
               "PULLS", "LAST ERROR");
    printf("  %-16s %-7s %-18s %4d  %-20s  %-20s  %-20s  %-20s %5d  %s\n",
           ctl_safe(d->partner, partner, sizeof(partner)),
           q_channel_name(d->channel), q_state_name(d->state), d->attempts,
           ctl_time(d->created_ms, t1), ctl_time(d->updated_ms, t2),
           ctl_time(d->next_attempt_ms, t3), ctl_time(d->pulled_ms, t4),
           d->pull_count, ctl_text(d->last_error, lasterr, sizeof(lasterr)));
    return 0;
}

static int
show_event(void *arg, const struct q_event *ev)
{
    struct show_acc *acc = arg;
    char partner[Q_PARTNER_MAX], note[Q_ERROR_MAX], t[CTL_TIME_MAX];

    if (acc->want_content)
        return 0;
    if (acc->json) {
        json_t *o = json_object();

        if (o == NULL) {
            acc->oom = 1;
            return 1;
        }
        json_object_set_new(o, "at", ctl_jtime(ev->at_ms));
        json_object_set_new(o, "partner", ctl_jstr(ev->partner));
        json_object_set_new(o, "channel", ctl_jstr(q_channel_name(ev->channel)));
        json_object_set_new(o, "state", ctl_jstr(q_state_name(ev->state)));
        json_object_set_new(o, "note", ctl_jstr(ev->note));
        if (json_array_append_new(acc->history, o) != 0) {
            acc->oom = 1;
            return 1;
        }
        acc->nevents++;
        return 0;
    }
    if (acc->nevents++ == 0)
        printf("\nhistory:\n  %-20s  %-16s %-7s %-18s %s\n", "AT", "PARTNER",
               "CHANNEL", "STATE", "NOTE");
    printf("  %-20s  %-16s %-7s %-18s %s\n", ctl_time(ev->at_ms, t),
           ctl_safe(ev->partner, partner, sizeof(partner)),
           q_channel_name(ev->channel), q_state_name(ev->state),
           ctl_text(ev->note, note, sizeof(note)));
    return 0;
}

static int
cmd_show(struct ctl *c)
{
    char err[CTL_ERR_MAX];
    const char *tracking = c->o.words[1];
    struct show_acc acc;
    int rc, qrc;

    memset(&acc, 0, sizeof(acc));
    if (c->o.content && c->o.json)
        return ctl_usage("show: --content and --json exclude each other");
    acc.want_content = c->o.content;
    acc.json = c->o.json;
    rc = ctl_store_open(c, 1);
    if (rc != 0)
        goto out;
    if (acc.json && !acc.want_content) {
        acc.doc = json_object();
        acc.deliveries = json_array();
        acc.history = json_array();
        if (acc.doc == NULL || acc.deliveries == NULL || acc.history == NULL) {
            ctl_warn("show: out of memory");
            rc = EXIT_FAIL;
            goto out;
        }
    }
    err[0] = '\0';
    qrc = queue_op_show(c->q, tracking, show_cert, show_delivery, show_event,
                        &acc, err, sizeof(err));
    if (qrc == Q_NOTFOUND || (qrc == Q_OK && !acc.have_cert)) {
        ctl_warn("%s: no such tracking number", tracking);
        rc = EXIT_NOTFOUND;
        goto out;
    }
    if (qrc != Q_OK) {
        ctl_warn("show %s: %s", tracking, err);
        rc = EXIT_FAIL;
        goto out;
    }
    if (acc.oom) {
        ctl_warn("show %s: out of memory", tracking);
        rc = EXIT_FAIL;
        goto out;
    }
    if (acc.want_content) {
        if ((acc.content_len > 0 &&
             fwrite(acc.content, 1, acc.content_len, stdout) !=
                 acc.content_len) || fflush(stdout) != 0) {
            ctl_warn("show %s: write to stdout: %s", tracking,
                     strerror(errno));
            rc = EXIT_FAIL;
        }
        goto out;
    }
    if (acc.json) {
        json_object_set_new(acc.doc, "deliveries", acc.deliveries);
        json_object_set_new(acc.doc, "history", acc.history);
        acc.deliveries = acc.history = NULL;
        rc = ctl_json_print(acc.doc) == 0 ? EXIT_OK : EXIT_FAIL;
        acc.doc = NULL;
    }
out:
    json_decref(acc.doc);
    json_decref(acc.deliveries);
    json_decref(acc.history);
    free(acc.content);
    return rc;
}

/* ---- submit ----------------------------------------------------------- */

static int
cmd_submit(struct ctl *c)
{
    char err[CTL_ERR_MAX], tracking[Q_TRACKING_MAX];
    const char *path = c->o.words[1];
    struct q_addressee to_partners[ROUTE_MAX_ADDRESSEES];
    struct sps_result *res = NULL;
    struct sps_header h;
    struct q_handin in;
    unsigned char *doc = NULL;
    size_t doclen = 0, nto = 0;
    long type = CTL_DEF_TYPE, status = CTL_DEF_STATUS;
    int rc, duplicate = 0;

    if (c->o.to == NULL)
        return ctl_usage("submit: --to CC is required");
    if (!route_country_ok(c->o.to))
        return ctl_usage("--to: '%s' is not a two-letter upper-case country "
                         "code (ISO 3166-1 alpha-2)", c->o.to);
    if (c->o.type_arg != NULL &&
        ctl_parse_long(c->o.type_arg, 0, 999, &type) != 0)
        return ctl_usage("--type: '%s' is not a document type code (0-999)",
                         c->o.type_arg);
    if (c->o.status_arg != NULL &&
        ctl_parse_long(c->o.status_arg, 0, 999, &status) != 0)
        return ctl_usage("--status: '%s' is not a status code (0-999)",
                         c->o.status_arg);

    rc = ctl_config(c);
    if (rc != 0)
        goto out;
    res = calloc(1, sizeof(*res));
    if (res == NULL) {
        ctl_warn("submit: out of memory");
        rc = EXIT_FAIL;
        goto out;
    }
    rc = ctl_validate(c, path, &doc, &doclen, res);
    if (rc != 0)
        goto out;
    h.from = c->cfg->country;
    h.to = c->o.to;
    h.type = (int)type;
    h.status = (int)status;
    h.number = res->facts.number;
    sps_check_header(&h, res);
    if (res->facts.number[0] == '\0' && res->nsevere == 0)
        sps_add_issue(res, SPS_SEVERE, 0, "SPSExchangedDocument/ID",
                      "the document has no certificate number");
    if (res->nsevere > 0) {
        ctl_print_issues(stderr, path, res);
        ctl_warn("%s: not handed in: %zu severe issue%s", path, res->nsevere,
                 res->nsevere == 1 ? "" : "s");
        rc = EXIT_FAIL;
        goto out;
    }
    if (res->nissues > 0)
        ctl_print_issues(stderr, path, res);

    err[0] = '\0';
    if (route_handin(c->cfg, NULL, c->cfg->country, c->o.to, to_partners,
                     ROUTE_MAX_ADDRESSEES, &nto, err, sizeof(err)) != 0) {
        ctl_warn("%s: not handed in: %s", path, err);
        rc = EXIT_FAIL;
        goto out;
    }
    rc = ctl_store_open(c, 0);
    if (rc != 0)
        goto out;

    memset(&in, 0, sizeof(in));
    in.from = c->cfg->country;
    in.to = c->o.to;
    in.type = (int)type;
    in.status = (int)status;
    in.number = res->facts.number;
    in.sender = CTL_SENDER;
    in.content = doc;
    in.content_len = doclen;
    in.to_partners = to_partners;
    in.nto = nto;
    err[0] = '\0';
    if (queue_handin(c->q, &in, tracking, &duplicate, err, sizeof(err))
        != Q_OK) {
        ctl_warn("%s: not handed in: %s%s", path, err,
                 queue_err_transient(c->q) ? " (try again later)" : "");
        rc = EXIT_FAIL;
        goto out;
    }
    if (c->o.json) {
        json_t *o = json_object();

        if (o != NULL) {
            json_object_set_new(o, "tracking", ctl_jstr(tracking));
            json_object_set_new(o, "duplicate", json_boolean(duplicate));
        }
        rc = ctl_json_print(o) == 0 ? EXIT_OK : EXIT_FAIL;
    } else {
        printf("%s\n", tracking);
        if (duplicate)
            printf("%s: duplicate of earlier hand-in %s, nothing stored\n",
                   path, tracking);
    }
out:
    free(doc);
    free(res);
    return rc;
}

/* ---- validate --------------------------------------------------------- */

static int
cmd_validate(struct ctl *c)
{
    const char *path = c->o.words[1];
    struct sps_result *res = NULL;
    unsigned char *doc = NULL;
    size_t doclen = 0;
    int rc;

    /* The configuration is read for schema_dir and limits, unless the
     * schema directory is given and no configuration was named. */
    if (c->o.schema_dir == NULL || c->o.config_path != NULL) {
        rc = ctl_config(c);
        if (rc != 0)
            goto out;
    }
    res = calloc(1, sizeof(*res));
    if (res == NULL) {
        ctl_warn("validate: out of memory");
        rc = EXIT_FAIL;
        goto out;
    }
    rc = ctl_validate(c, path, &doc, &doclen, res);
    if (rc != 0)
        goto out;
    if (c->o.json) {
        json_t *o = json_object();

        if (o != NULL) {
            json_object_set_new(o, "valid", json_boolean(res->nsevere == 0));
            json_object_set_new(o, "issues", ctl_issues_json(res));
        }
        if (ctl_json_print(o) != 0) {
            rc = EXIT_FAIL;
            goto out;
        }
    } else {
        ctl_print_issues(stdout, path, res);
        if (res->nsevere == 0)
            printf("%s: valid\n", path);
    }
    rc = res->nsevere == 0 ? EXIT_OK : EXIT_FAIL;
out:
    free(doc);
    free(res);
    return rc;
}

/* ---- check ------------------------------------------------------------ */

static int
cmd_check(struct ctl *c)
{
    char err[CTL_ERR_MAX];
    int rc;

    rc = ctl_store_open(c, 1);
    if (rc != 0)
        return rc;
    err[0] = '\0';
    if (queue_op_check(c->q, err, sizeof(err)) != Q_OK) {
        if (c->o.json) {
            json_t *o = json_object();

            if (o != NULL) {
                json_object_set_new(o, "ok", json_false());
                json_object_set_new(o, "problem", ctl_jstr(err));
            }
            ctl_json_print(o);
        }
        ctl_warn("store check failed: %s", err[0] != '\0' ? err : "?");
        return EXIT_FAIL;
    }
    if (c->o.json) {
        json_t *o = json_object();

        if (o != NULL)
            json_object_set_new(o, "ok", json_true());
        return ctl_json_print(o) == 0 ? EXIT_OK : EXIT_FAIL;
    }
    printf("store OK\n");
    return EXIT_OK;
}

/* ---- repair: retry, hold, release, purge ------------------------------ */

enum repair_verb { REPAIR_RETRY, REPAIR_HOLD, REPAIR_RELEASE, REPAIR_PURGE };

static const struct {
    const char *name;
    const char *done;             /* "N deliveries <done>" */
} repair_words[] = {
    [REPAIR_RETRY]   = { "retry",   "due now" },
    [REPAIR_HOLD]    = { "hold",    "held" },
    [REPAIR_RELEASE] = { "release", "released" },
    [REPAIR_PURGE]   = { "purge",   "deleted" },
};

/* ctl_partner_known - 1 if the configuration defines partner id */
static int
ctl_partner_known(const struct config *cfg, const char *id)
{
    size_t i;

    for (i = 0; i < cfg->npartners; i++)
        if (strcmp(cfg->partners[i].id, id) == 0)
            return 1;
    return 0;
}

/* repair_run - one repair verb on the deliveries of a tracking number (the
 * command's argument) or of a partner (--partner) */
static int
repair_run(struct ctl *c, enum repair_verb verb)
{
    char err[CTL_ERR_MAX], who[Q_TRACKING_MAX + Q_PARTNER_MAX];
    const char *name = repair_words[verb].name;
    const char *tracking = c->o.nwords > 1 ? c->o.words[1] : NULL;
    const char *partner = c->o.partner;
    int rc, qrc = Q_ERR, n = 0;
    int64_t now;

    if ((tracking == NULL) == (partner == NULL))
        return ctl_usage("%s: give either TRACKING or --partner P, "
                         "not both and not neither", name);
    if (tracking != NULL && *tracking == '\0')
        return ctl_usage("%s: empty tracking number", name);
    if (partner != NULL && *partner == '\0')
        return ctl_usage("--partner: empty partner id");
    if (verb == REPAIR_PURGE && !c->o.yes)
        return ctl_usage("purge deletes deliveries; add --yes");
    ctl_safe(tracking != NULL ? tracking : partner, who, sizeof(who));

    /* The configuration, when there is one to read, says which partners
     * exist; with --store alone any id is taken (it may match nothing). */
    if (c->o.store == NULL || c->o.config_path != NULL) {
        rc = ctl_config(c);
        if (rc != 0)
            return rc;
    }
    if (partner != NULL &&
        (strlen(partner) >= Q_PARTNER_MAX ||
         (c->cfg != NULL && !ctl_partner_known(c->cfg, partner)))) {
        ctl_warn("%s: no such partner", who);
        return EXIT_NOTFOUND;
    }
    rc = ctl_store_open(c, 0);
    if (rc != 0)
        return rc;

    now = ctl_now_ms();
    err[0] = '\0';
    switch (verb) {
    case REPAIR_RETRY:
        qrc = queue_op_retry(c->q, tracking, partner, now, &n, err,
                             sizeof(err));
        break;
    case REPAIR_HOLD:
        qrc = queue_op_hold(c->q, tracking, partner, &n, err, sizeof(err));
        break;
    case REPAIR_RELEASE:
        qrc = queue_op_release(c->q, tracking, partner, now, &n, err,
                               sizeof(err));
        break;
    case REPAIR_PURGE:
        qrc = queue_op_purge(c->q, tracking, &n, err, sizeof(err));
        break;
    }
    if (qrc == Q_NOTFOUND) {
        ctl_warn("%s: %s", who, tracking != NULL ? "no such tracking number"
                                                 : "no such partner");
        return EXIT_NOTFOUND;
    }
    if (qrc != Q_OK) {
        ctl_warn("%s %s: %s%s", name, who, err[0] != '\0' ? err : "failed",
                 queue_err_transient(c->q) ? " (try again later)" : "");
        return EXIT_FAIL;
    }
    if (c->o.json) {
        json_t *o = json_object();

        if (o != NULL)
            json_object_set_new(o, "changed", json_integer(n));
        return ctl_json_print(o) == 0 ? EXIT_OK : EXIT_FAIL;
    }
    if (printf("%d deliver%s %s\n", n, n == 1 ? "y" : "ies",
               repair_words[verb].done) < 0 || fflush(stdout) != 0) {
        ctl_warn("write to stdout: %s", strerror(errno));
        return EXIT_FAIL;
    }
    return EXIT_OK;
}

static int
cmd_retry(struct ctl *c)
{
    return repair_run(c, REPAIR_RETRY);
}

static int
cmd_hold(struct ctl *c)
{
    return repair_run(c, REPAIR_HOLD);
}

static int
cmd_release(struct ctl *c)
{
    return repair_run(c, REPAIR_RELEASE);
}

static int
cmd_purge(struct ctl *c)
{
    return repair_run(c, REPAIR_PURGE);
}

/* ---- main ------------------------------------------------------------- */

static const struct ctl_command ctl_commands[] = {
    { "status",   cmd_status,   0, 0, 0, "" },
    { "list",     cmd_list,     OPT_PARTNER | OPT_STATE | OPT_CHANNEL |
                                OPT_LIMIT, 0, 0, "" },
    { "show",     cmd_show,     OPT_CONTENT, 1, 0, "TRACKING" },
    { "submit",   cmd_submit,   OPT_TO | OPT_TYPE | OPT_STATUS |
                                OPT_SCHEMA_DIR, 1, 0, "FILE" },
    { "validate", cmd_validate, OPT_SCHEMA_DIR, 1, 0, "FILE" },
    { "check",    cmd_check,    0, 0, 0, "" },
    { "retry",    cmd_retry,    OPT_PARTNER, 0, 1, "TRACKING" },
    { "hold",     cmd_hold,     OPT_PARTNER, 0, 1, "TRACKING" },
    { "release",  cmd_release,  OPT_PARTNER, 0, 1, "TRACKING" },
    { "purge",    cmd_purge,    OPT_YES, 1, 0, "TRACKING" },
};

/* ctl_parse_args - fill o from argv; 0 ok, else an exit status
 * (the problem already reported) */
static int
ctl_parse_args(int argc, char **argv, struct ctl_opts *o)
{
    int ch, i;

    /* A leading '-' hands every non-option word back in order (as 1), so
     * options may stand anywhere, whatever POSIXLY_CORRECT says. */
    opterr = 1;
    for (;;) {
        ch = getopt_long(argc, argv, "-c:h", ctl_long_options, NULL);
        if (ch == -1)
            break;
        switch (ch) {
        case 1:
            if (o->nwords == CTL_MAX_ARGS)
                return ctl_usage("too many arguments ('%s')", optarg);
            o->words[o->nwords++] = optarg;
            break;
        case 'c':
            o->config_path = optarg;
            break;
        case 'h':
            o->help = 1;
            break;
        case LO_JSON:
            o->json = 1;
            break;
        case LO_STORE:
            o->store = optarg;
            break;
        case LO_SCHEMA_DIR:
            o->schema_dir = optarg;
            o->seen |= OPT_SCHEMA_DIR;
            break;
        case LO_PARTNER:
            o->partner = optarg;
            o->seen |= OPT_PARTNER;
            break;
        case LO_STATE:
            o->state_name = optarg;
            o->seen |= OPT_STATE;
            break;
        case LO_CHANNEL:
            o->channel_name = optarg;
            o->seen |= OPT_CHANNEL;
            break;
        case LO_LIMIT:
            o->limit_arg = optarg;
            o->seen |= OPT_LIMIT;
            break;
        case LO_CONTENT:
            o->content = 1;
            o->seen |= OPT_CONTENT;
            break;
        case LO_TO:
            o->to = optarg;
            o->seen |= OPT_TO;
            break;
        case LO_TYPE:
            o->type_arg = optarg;
            o->seen |= OPT_TYPE;
            break;
        case LO_STATUS:
            o->status_arg = optarg;
            o->seen |= OPT_STATUS;
            break;
        case LO_VERSION:
            o->version = 1;
            break;
        case LO_YES:
            o->yes = 1;
            o->seen |= OPT_YES;
            break;
        default:
            /* getopt_long has named the option already. */
            fputs(ctl_hint, stderr);
            return EXIT_USAGE;
        }
    }
    /* Words after "--" are left at optind. */
    for (i = optind; i < argc; i++) {
        if (o->nwords == CTL_MAX_ARGS)
            return ctl_usage("too many arguments ('%s')", argv[i]);
        o->words[o->nwords++] = argv[i];
    }
    return 0;
}

int
main(int argc, char **argv)
{
    struct ctl c;
    const struct ctl_command *cmd = NULL;
    size_t i;
    int rc;

    memset(&c, 0, sizeof(c));
    rc = ctl_parse_args(argc, argv, &c.o);
    if (rc != 0)
        goto out;
    if (c.o.help) {
        fputs(ctl_help, stdout);
        rc = EXIT_OK;
        goto out;
    }
    if (c.o.version) {
        printf(CTL_NAME " (ecert-gateway) %s\n", ECERT_VERSION);
        rc = EXIT_OK;
        goto out;
    }
    if (c.o.nwords == 0) {
        rc = ctl_usage("no command given");
        goto out;
    }
    for (i = 0; i < sizeof(ctl_commands) / sizeof(ctl_commands[0]); i++)
        if (strcmp(c.o.words[0], ctl_commands[i].name) == 0)
            cmd = &ctl_commands[i];
    if (cmd == NULL) {
        rc = ctl_usage("unknown command '%s'", c.o.words[0]);
        goto out;
    }
    for (i = 0; i < sizeof(ctl_option_names) / sizeof(ctl_option_names[0]);
         i++)
        if ((c.o.seen & ctl_option_names[i].bit) &&
            !(cmd->options & ctl_option_names[i].bit)) {
            rc = ctl_usage("option %s is not valid for %s",
                           ctl_option_names[i].name, cmd->name);
            goto out;
        }
    if (c.o.nwords - 1 < cmd->nargs) {
        rc = ctl_usage("%s: missing argument %s", cmd->name, cmd->args);
        goto out;
    }
    if (c.o.nwords - 1 > cmd->nargs + cmd->nopt) {
        rc = ctl_usage("%s: unexpected argument '%s'", cmd->name,
                       c.o.words[1 + cmd->nargs + cmd->nopt]);
        goto out;
    }
    rc = cmd->run(&c);
out:
    if (c.q != NULL)
        queue_close(c.q);
    if (c.schema != NULL)
        sps_schema_free(c.schema);
    if (c.cfg != NULL)
        config_free(c.cfg);
    return rc;
}
