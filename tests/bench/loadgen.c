/*
 * loadgen.c - HTTP(S) POST load generator on libcurl's multi interface.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * N keep-alive connections (one easy handle per connection, re-added to
 * the multi handle after each answer, connection cache of N), mutual TLS
 * 1.3, SOAP 1.1 POSTs; every latency is recorded.  Bounded by a duration
 * and by a request count.
 *
 *   loadgen -u URL [-c CONNS] [-d SECONDS] [-w WARMUP] [-n MAXREQ]
 *           [--cert F --key F --cacert F] [-a SOAPACTION]
 *           (-b BODYFILE | -B BODYDIR | -t TEMPLATE [--start K])
 *           [--rate R] [--expect TEXT] [--save FILE] [--label L]
 *           [--timeout SECS]
 *
 *   -t TEMPLATE  every @N@ in the file is replaced by a per-request counter
 *                (from --start, default 1), so every request is distinct.
 *   -B DIR       the regular files of DIR, used in turn.
 *   --rate R     open loop: at most R requests/s in total (0: as fast as
 *                the connections go).
 *   --expect T   an answer counts as good only if it holds T (and is 200).
 *   -w WARMUP    seconds at the start whose answers are not counted.
 *   --timeout S  per request (default 30); a request that takes longer is
 *                an error.
 *
 * Prints one line:
 *   label=L conns=N secs=S requests=R errors=E rps=X p50_ms=.. p90_ms=..
 *   p99_ms=.. max_ms=.. mean_ms=.. all_errors=E' (E' counts the warm-up too)
 * Exit status 0 if at least one request succeeded, 1 otherwise.
 */
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <curl/curl.h>

#define RESP_CAP (4u << 20)     /* answer bytes kept per request */

struct seg {                    /* template piece: text, then counter? */
    const char *p;
    size_t len;
    int counter;
};

struct conn {
    CURL *h;
    struct curl_slist *hdrs;
    char *body;                 /* template: this request's body */
    size_t bodycap;
    char *resp;
    size_t resplen, respcap;
    double t_start;
    int busy;
};

static struct {
    const char *url, *cert, *key, *cacert, *action, *expect, *save, *label;
    const char *bodyfile, *bodydir, *tmpl;
    int conns;
    long timeout;
    double secs, warmup, rate;
    long maxreq;
    unsigned long long start;
    int verbose;
} opt = {
    .conns = 1, .secs = 10, .timeout = 30, .maxreq = 100000000L, .start = 1,
    .label = "run",
};

static char **bodies;           /* -b / -B */
static size_t *bodylens;
static size_t nbodies, nextbody;
static struct seg *segs;        /* -t */
static size_t nsegs;
static unsigned long long counter;

static double *lat;             /* seconds, every counted request */
static size_t nlat, latcap;
static long nerr, nerr_curl, nerr_http, nerr_expect, issued;
static int saved;

static double
now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void __attribute__((format(printf, 1, 2)))
die(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    fprintf(stderr, "loadgen: ");
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(2);
}

static void *
xrealloc(void *p, size_t n)
{
    p = realloc(p, n);
    if (p == NULL)
        die("%s", "out of memory");
    return p;
}

static char *
slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    size_t cap = 0, n = 0, r;

    if (f == NULL)
        die("cannot open %s", path);
    for (;;) {
        if (n + 65536 > cap) {
            cap = cap ? cap * 2 : 131072;
            buf = xrealloc(buf, cap);
        }
        r = fread(buf + n, 1, cap - n, f);
        n += r;
        if (r == 0)
            break;
    }
    fclose(f);
    buf[n] = '\0';
    *len = n;
    return buf;
}

static void
load_bodies(void)
{
    if (opt.bodyfile != NULL) {
        bodies = xrealloc(NULL, sizeof(*bodies));
        bodylens = xrealloc(NULL, sizeof(*bodylens));
        bodies[0] = slurp(opt.bodyfile, &bodylens[0]);
        nbodies = 1;
    } else if (opt.bodydir != NULL) {
        DIR *d = opendir(opt.bodydir);
        struct dirent *e;
        struct stat sb;
        char path[4096];

        if (d == NULL)
            die("cannot open directory %s", opt.bodydir);
        while ((e = readdir(d)) != NULL) {
            snprintf(path, sizeof(path), "%s/%s", opt.bodydir, e->d_name);
            if (stat(path, &sb) != 0 || !S_ISREG(sb.st_mode))
                continue;
            bodies = xrealloc(bodies, (nbodies + 1) * sizeof(*bodies));
            bodylens = xrealloc(bodylens, (nbodies + 1) * sizeof(*bodylens));
            bodies[nbodies] = slurp(path, &bodylens[nbodies]);
            nbodies++;
        }
        closedir(d);
        if (nbodies == 0)
            die("no files in %s", opt.bodydir);
    } else if (opt.tmpl != NULL) {
        size_t len;
        char *t = slurp(opt.tmpl, &len), *p = t, *q;

        for (;;) {
            q = strstr(p, "@N@");
            segs = xrealloc(segs, (nsegs + 1) * sizeof(*segs));
            segs[nsegs].p = p;
            segs[nsegs].len = q ? (size_t)(q - p) : strlen(p);
            segs[nsegs].counter = q != NULL;
            nsegs++;
            if (q == NULL)
                break;
            p = q + 3;
        }
    } else {
        die("%s", "one of -b, -B, -t is required");
    }
}

static size_t
on_data(char *ptr, size_t size, size_t nmemb, void *arg)
{
    struct conn *c = arg;
    size_t n = size * nmemb, room;

    if (c->resplen + n + 1 > c->respcap && c->respcap < RESP_CAP) {
        size_t cap = c->respcap ? c->respcap : 16384;

        while (cap < c->resplen + n + 1 && cap < RESP_CAP)
            cap *= 2;
        c->resp = xrealloc(c->resp, cap);
        c->respcap = cap;
    }
    room = c->respcap > c->resplen + 1 ? c->respcap - c->resplen - 1 : 0;
    if (n < room)
        room = n;
    memcpy(c->resp + c->resplen, ptr, room);
    c->resplen += room;
    c->resp[c->resplen] = '\0';
    return n;
}

/* The next request's body on c. */
static void
set_body(struct conn *c)
{
    const char *b;
    size_t len;

    if (nsegs > 0) {
        size_t i, n = 0;
        char num[32];
        int nl;

        nl = snprintf(num, sizeof(num), "%llu", opt.start + counter++);
        for (i = 0; i < nsegs; i++)
            n += segs[i].len + (segs[i].counter ? (size_t)nl : 0);
        if (n + 1 > c->bodycap) {
            c->bodycap = n + 1;
            c->body = xrealloc(c->body, c->bodycap);
        }
        n = 0;
        for (i = 0; i < nsegs; i++) {
            memcpy(c->body + n, segs[i].p, segs[i].len);
            n += segs[i].len;
            if (segs[i].counter) {
                memcpy(c->body + n, num, (size_t)nl);
                n += (size_t)nl;
            }
        }
        b = c->body;
        len = n;
    } else {
        b = bodies[nextbody];
        len = bodylens[nextbody];
        nextbody = (nextbody + 1) % nbodies;
    }
    curl_easy_setopt(c->h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
    curl_easy_setopt(c->h, CURLOPT_POSTFIELDS, b);
}

static void
conn_init(struct conn *c)
{
    char action[1024];

    c->h = curl_easy_init();
    if (c->h == NULL)
        die("%s", "curl_easy_init failed");
    c->hdrs = curl_slist_append(NULL, "Content-Type: text/xml; charset=utf-8");
    c->hdrs = curl_slist_append(c->hdrs, "Expect:");
    if (opt.action != NULL) {
        snprintf(action, sizeof(action), "SOAPAction: \"%s\"", opt.action);
        c->hdrs = curl_slist_append(c->hdrs, action);
    }
    curl_easy_setopt(c->h, CURLOPT_URL, opt.url);
    curl_easy_setopt(c->h, CURLOPT_HTTPHEADER, c->hdrs);
    curl_easy_setopt(c->h, CURLOPT_HTTP_VERSION, CURL_HTTP_VERSION_1_1);
    curl_easy_setopt(c->h, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(c->h, CURLOPT_WRITEDATA, c);
    curl_easy_setopt(c->h, CURLOPT_PRIVATE, c);
    curl_easy_setopt(c->h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c->h, CURLOPT_TIMEOUT, opt.timeout);
    curl_easy_setopt(c->h, CURLOPT_CONNECTTIMEOUT, 10L);
    curl_easy_setopt(c->h, CURLOPT_TCP_NODELAY, 1L);
    curl_easy_setopt(c->h, CURLOPT_SSLVERSION,
                     CURL_SSLVERSION_TLSv1_3 | CURL_SSLVERSION_MAX_DEFAULT);
    if (opt.cert != NULL)
        curl_easy_setopt(c->h, CURLOPT_SSLCERT, opt.cert);
    if (opt.key != NULL)
        curl_easy_setopt(c->h, CURLOPT_SSLKEY, opt.key);
    if (opt.cacert != NULL)
        curl_easy_setopt(c->h, CURLOPT_CAINFO, opt.cacert);
    if (opt.verbose)
        curl_easy_setopt(c->h, CURLOPT_VERBOSE, 1L);
}

static int
cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return x < y ? -1 : x > y;
}

static double
pct(double p)
{
    size_t i;

    if (nlat == 0)
        return 0;
    i = (size_t)(p * (double)nlat + 0.999999);     /* nearest rank */
    if (i < 1)
        i = 1;
    if (i > nlat)
        i = nlat;
    return lat[i - 1];
}

static void
usage(void)
{
    fprintf(stderr,
        "usage: loadgen -u URL [-c CONNS] [-d SECS] [-w WARMUP] [-n MAXREQ]\n"
        "         [--cert F] [--key F] [--cacert F] [-a SOAPACTION]\n"
        "         (-b BODY | -B DIR | -t TEMPLATE [--start K]) [--rate R]\n"
        "         [--expect TEXT] [--save FILE] [--label L] [--timeout S] [-v]\n");
    exit(2);
}

int
main(int argc, char **argv)
{
    static const struct option lo[] = {
        {"cert", 1, NULL, 'C'}, {"key", 1, NULL, 'K'},
        {"cacert", 1, NULL, 'A'}, {"start", 1, NULL, 'S'},
        {"rate", 1, NULL, 'r'}, {"expect", 1, NULL, 'e'},
        {"save", 1, NULL, 's'}, {"label", 1, NULL, 'l'},
        {"timeout", 1, NULL, 'o'},
        {NULL, 0, NULL, 0}};
    struct conn *cs;
    CURLM *m;
    double t0, t_warm, t_end, t_next, t_last = 0, elapsed, sum = 0;
    int ch, i, running, done_issuing = 0;
    long good = 0;

    while ((ch = getopt_long(argc, argv, "u:c:d:w:n:a:b:B:t:v", lo, NULL)) != -1) {
        switch (ch) {
        case 'u': opt.url = optarg; break;
        case 'c': opt.conns = atoi(optarg); break;
        case 'd': opt.secs = atof(optarg); break;
        case 'w': opt.warmup = atof(optarg); break;
        case 'n': opt.maxreq = atol(optarg); break;
        case 'a': opt.action = optarg; break;
        case 'b': opt.bodyfile = optarg; break;
        case 'B': opt.bodydir = optarg; break;
        case 't': opt.tmpl = optarg; break;
        case 'v': opt.verbose = 1; break;
        case 'C': opt.cert = optarg; break;
        case 'K': opt.key = optarg; break;
        case 'A': opt.cacert = optarg; break;
        case 'S': opt.start = strtoull(optarg, NULL, 10); break;
        case 'r': opt.rate = atof(optarg); break;
        case 'e': opt.expect = optarg; break;
        case 's': opt.save = optarg; break;
        case 'l': opt.label = optarg; break;
        case 'o': opt.timeout = atol(optarg); break;
        default: usage();
        }
    }
    if (opt.url == NULL || opt.conns < 1 || opt.conns > 10000 ||
        opt.secs <= 0 || opt.secs > 3600 || opt.warmup < 0 ||
        opt.warmup >= opt.secs || opt.timeout < 1 || optind != argc)
        usage();
    load_bodies();

    if (curl_global_init(CURL_GLOBAL_DEFAULT) != 0)
        die("%s", "curl_global_init failed");
    m = curl_multi_init();
    curl_multi_setopt(m, CURLMOPT_MAXCONNECTS, (long)opt.conns);
    curl_multi_setopt(m, CURLMOPT_MAX_TOTAL_CONNECTIONS, (long)opt.conns);
    curl_multi_setopt(m, CURLMOPT_MAX_HOST_CONNECTIONS, (long)opt.conns);
    curl_multi_setopt(m, CURLMOPT_PIPELINING, CURLPIPE_NOTHING);
    cs = calloc((size_t)opt.conns, sizeof(*cs));
    if (cs == NULL)
        die("%s", "out of memory");
    for (i = 0; i < opt.conns; i++)
        conn_init(&cs[i]);

    t0 = now();
    t_warm = t0 + opt.warmup;
    t_end = t0 + opt.secs;
    t_next = t0;
    for (;;) {
        double t = now();
        CURLMsg *msg;
        int left;

        /* Issue requests on idle connections. */
        if (!done_issuing && (t >= t_end || issued >= opt.maxreq))
            done_issuing = 1;
        for (i = 0; i < opt.conns && !done_issuing; i++) {
            struct conn *c = &cs[i];

            if (c->busy)
                continue;
            if (opt.rate > 0 && t < t_next)
                break;
            set_body(c);
            c->resplen = 0;
            c->t_start = now();
            c->busy = 1;
            curl_multi_add_handle(m, c->h);
            issued++;
            if (opt.rate > 0) {
                t_next += 1.0 / opt.rate;
                if (t_next < t - 1.0)       /* do not burst after a stall */
                    t_next = t - 1.0;
            }
            if (issued >= opt.maxreq)
                done_issuing = 1;
        }
        curl_multi_perform(m, &running);
        while ((msg = curl_multi_info_read(m, &left)) != NULL) {
            struct conn *c;
            long code = 0;
            double te;
            int bad = 0;

            if (msg->msg != CURLMSG_DONE)
                continue;
            curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&c);
            te = now();
            curl_easy_getinfo(c->h, CURLINFO_RESPONSE_CODE, &code);
            if (msg->data.result != CURLE_OK) {
                bad = 1;
                if (nerr_curl++ == 0)
                    fprintf(stderr, "loadgen: %s: %s\n", opt.label,
                            curl_easy_strerror(msg->data.result));
            } else if (code != 200) {
                bad = 1;
                if (nerr_http++ == 0)
                    fprintf(stderr, "loadgen: %s: HTTP %ld: %.300s\n",
                            opt.label, code, c->resp ? c->resp : "");
            } else if (opt.expect != NULL &&
                       (c->resp == NULL || strstr(c->resp, opt.expect) == NULL)) {
                bad = 1;
                if (nerr_expect++ == 0)
                    fprintf(stderr, "loadgen: %s: answer without '%s': %.300s\n",
                            opt.label, opt.expect, c->resp ? c->resp : "");
            }
            if (!bad && opt.save != NULL && !saved) {
                FILE *f = fopen(opt.save, "wb");

                if (f != NULL) {
                    fwrite(c->resp, 1, c->resplen, f);
                    fclose(f);
                }
                saved = 1;
            }
            if (te >= t_warm && c->t_start >= t_warm) {
                if (bad) {
                    nerr++;
                } else {
                    if (nlat == latcap) {
                        latcap = latcap ? latcap * 2 : 65536;
                        lat = xrealloc(lat, latcap * sizeof(*lat));
                    }
                    lat[nlat++] = te - c->t_start;
                    sum += te - c->t_start;
                    good++;
                }
                if (te > t_last)
                    t_last = te;
            }
            curl_multi_remove_handle(m, c->h);
            c->busy = 0;
        }
        if (done_issuing) {
            int busy = 0;

            for (i = 0; i < opt.conns; i++)
                busy |= cs[i].busy;
            if (!busy)
                break;
        }
        {
            int numfds, wait_ms = 10;

            if (opt.rate > 0 && !done_issuing) {
                double d = (t_next - now()) * 1000.0;

                wait_ms = d < 0 ? 0 : d > 10 ? 10 : (int)d;
            }
            curl_multi_poll(m, NULL, 0, wait_ms, &numfds);
        }
    }
    /* Requests count if they started after the warm-up and finished by
     * the end of the run; the window is warm-up end .. duration end (or
     * the last answer if that came later). */
    elapsed = (t_last > t_end ? t_last : t_end) - t_warm;
    qsort(lat, nlat, sizeof(*lat), cmp_double);
    printf("label=%s conns=%d secs=%.2f requests=%ld errors=%ld rps=%.1f "
           "p50_ms=%.3f p90_ms=%.3f p99_ms=%.3f max_ms=%.3f mean_ms=%.3f "
           "all_errors=%ld\n",
           opt.label, opt.conns, elapsed, good, nerr,
           elapsed > 0 ? (double)good / elapsed : 0.0, pct(0.50) * 1e3,
           pct(0.90) * 1e3, pct(0.99) * 1e3,
           nlat ? lat[nlat - 1] * 1e3 : 0.0, nlat ? sum / (double)nlat * 1e3 : 0.0,
           nerr_curl + nerr_http + nerr_expect);
    if (nerr_curl + nerr_http + nerr_expect > 0)
        fprintf(stderr, "loadgen: %s: errors: transport %ld, http %ld, "
                "unexpected answer %ld (warm-up included)\n", opt.label,
                nerr_curl, nerr_http, nerr_expect);
    for (i = 0; i < opt.conns; i++) {
        curl_multi_remove_handle(m, cs[i].h);
        curl_easy_cleanup(cs[i].h);
        curl_slist_free_all(cs[i].hdrs);
        free(cs[i].body);
        free(cs[i].resp);
    }
    curl_multi_cleanup(m);
    curl_global_cleanup();
    return good > 0 ? 0 : 1;
}
