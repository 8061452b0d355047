/*
 * latprobe.c - end-to-end latency probes: hand-in -> visible in pull, and
 * hand-in -> mail accepted by the relay.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 *   latprobe -u URL --cacert CA --cert-in C --key-in K --cert-pull C
 *            --key-pull K -t TEMPLATE [-r RATE] [-d SECS] [-m MAILDIR]
 *            [--start N]
 *
 * Three threads.  The hand-in thread POSTs DeliverEnvelope (TEMPLATE, @N@
 * = the probe counter) at RATE/s as the submitting partner and notes the
 * send time and the tracking number it gets.  The pull thread polls
 * GetImportEnvelopeHeaders as the addressee every 2 ms, notes when each
 * tracking number first appears, and acknowledges it (so the list stays
 * short).  The mail thread (with -m) scans smtp-sink's dump directory,
 * takes the X-ECert-Tracking header of each finished file and its
 * modification time (when the sink wrote the end of the message).
 * Prints p50/p99 of each latency (ms) and how many probes were seen.
 */
#include <dirent.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

#define MAXPROBES 100000
#define TRK 64

struct seen {
    char tracking[TRK];
    double t;
};

static struct {
    const char *url, *cacert, *cert_in, *key_in, *cert_pull, *key_pull;
    const char *tmpl, *maildir;
    double rate, secs;
    unsigned long start;
} opt = {.rate = 20, .secs = 15, .start = 1};

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static struct seen *sent, *pulled, *mailed;
static double *handin_lat;
static size_t nsent, npulled, nmailed, nfail;
static volatile int handin_done, stop_all;

static double
now_real(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void
sleep_s(double s)
{
    struct timespec ts;

    if (s <= 0)
        return;
    ts.tv_sec = (time_t)s;
    ts.tv_nsec = (long)((s - (double)ts.tv_sec) * 1e9);
    nanosleep(&ts, NULL);
}

struct buf {
    char *p;
    size_t n, cap;
};

static size_t
on_data(char *ptr, size_t size, size_t nmemb, void *arg)
{
    struct buf *b = arg;
    size_t n = size * nmemb;

    if (b->n + n + 1 > b->cap) {
        b->cap = (b->n + n + 1) * 2;
        b->p = realloc(b->p, b->cap);
        if (b->p == NULL)
            abort();
    }
    memcpy(b->p + b->n, ptr, n);
    b->n += n;
    b->p[b->n] = '\0';
    return n;
}

static CURL *
client(const char *cert, const char *key, const char *action,
       struct curl_slist **hdrs, struct buf *b)
{
    CURL *h = curl_easy_init();
    char a[512];

    snprintf(a, sizeof(a), "SOAPAction: \"http://ephyto.ippc.int/IDeliveryService/%s\"",
             action);
    *hdrs = curl_slist_append(NULL, "Content-Type: text/xml; charset=utf-8");
    *hdrs = curl_slist_append(*hdrs, "Expect:");
    *hdrs = curl_slist_append(*hdrs, a);
    curl_easy_setopt(h, CURLOPT_URL, opt.url);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, *hdrs);
    curl_easy_setopt(h, CURLOPT_SSLCERT, cert);
    curl_easy_setopt(h, CURLOPT_SSLKEY, key);
    curl_easy_setopt(h, CURLOPT_CAINFO, opt.cacert);
    curl_easy_setopt(h, CURLOPT_SSLVERSION,
                     CURL_SSLVERSION_TLSv1_3 | CURL_SSLVERSION_MAX_DEFAULT);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_TIMEOUT, 30L);
    curl_easy_setopt(h, CURLOPT_TCP_NODELAY, 1L);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, b);
    return h;
}

/* The text of the first element whose local name is tag, after p. */
static const char *
elem(const char *p, const char *tag, char *out, size_t outlen, const char **endp)
{
    char pat[128];
    const char *s, *e;
    size_t n;

    snprintf(pat, sizeof(pat), "%s>", tag);
    for (s = strstr(p, pat); s != NULL; s = strstr(s + 1, pat)) {
        const char *lt = s;

        while (lt > p && lt[-1] != '<' && lt[-1] != '/' && lt[-1] != ' ')
            lt--;
        if (lt > p && lt[-1] == '<')
            break;                          /* an opening tag */
    }
    if (s == NULL)
        return NULL;
    s += strlen(pat);
    e = strchr(s, '<');
    if (e == NULL)
        return NULL;
    n = (size_t)(e - s) < outlen - 1 ? (size_t)(e - s) : outlen - 1;
    memcpy(out, s, n);
    out[n] = '\0';
    if (endp != NULL)
        *endp = e;
    return out;
}

static void *
handin_main(void *arg)
{
    struct curl_slist *hdrs;
    struct buf b = {0}, body = {0};
    CURL *h = client(opt.cert_in, opt.key_in, "DeliverEnvelope", &hdrs, &b);
    FILE *f = fopen(opt.tmpl, "rb");
    char *t, *at, num[32], trk[TRK];
    size_t tl;
    double t0 = now_real(), due;
    unsigned long i;

    (void)arg;
    if (f == NULL) {
        perror(opt.tmpl);
        exit(2);
    }
    t = malloc(1 << 20);
    tl = fread(t, 1, (1 << 20) - 1, f);
    t[tl] = '\0';
    fclose(f);
    for (i = 0; i < MAXPROBES; i++) {
        double ts, te;
        const char *p;

        due = t0 + (double)i / opt.rate;
        if (due > t0 + opt.secs)
            break;
        sleep_s(due - now_real());
        snprintf(num, sizeof(num), "%lu", opt.start + i);
        body.n = 0;
        for (p = t; (at = strstr(p, "@N@")) != NULL; p = at + 3) {
            on_data((char *)p, 1, (size_t)(at - p), &body);
            on_data(num, 1, strlen(num), &body);
        }
        on_data((char *)p, 1, strlen(p), &body);
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, body.p);
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body.n);
        b.n = 0;
        ts = now_real();
        if (curl_easy_perform(h) != CURLE_OK || b.p == NULL ||
            elem(b.p, "hubDeliveryNumber", trk, sizeof(trk), NULL) == NULL) {
            pthread_mutex_lock(&mu);
            if (nfail++ == 0)
                fprintf(stderr, "latprobe: hand-in failed: %.300s\n", b.p ? b.p : "");
            pthread_mutex_unlock(&mu);
            continue;
        }
        te = now_real();
        pthread_mutex_lock(&mu);
        snprintf(sent[nsent].tracking, TRK, "%s", trk);
        sent[nsent].t = ts;
        handin_lat[nsent] = te - ts;
        nsent++;
        pthread_mutex_unlock(&mu);
    }
    handin_done = 1;
    curl_easy_cleanup(h);
    curl_slist_free_all(hdrs);
    free(t);
    free(b.p);
    free(body.p);
    return NULL;
}

static const char headers_req[] =
    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>"
    "<soap:Envelope xmlns:soap=\"http://schemas.xmlsoap.org/soap/envelope/\">"
    "<soap:Body><ns:GetImportEnvelopeHeaders xmlns:ns=\"http://ephyto.ippc.int/\"/>"
    "</soap:Body></soap:Envelope>";

static void *
pull_main(void *arg)
{
    struct curl_slist *hh, *ha;
    struct buf b = {0}, ab = {0};
    CURL *h = client(opt.cert_pull, opt.key_pull, "GetImportEnvelopeHeaders",
                     &hh, &b);
    CURL *a = client(opt.cert_pull, opt.key_pull, "AcknowledgeEnvelopeReceipt",
                     &ha, &ab);
    char trk[TRK], ack[1024];

    (void)arg;
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, headers_req);
    while (!stop_all) {
        const char *p;
        double t;

        b.n = 0;
        if (curl_easy_perform(h) != CURLE_OK || b.p == NULL) {
            sleep_s(0.01);
            continue;
        }
        t = now_real();
        for (p = b.p; elem(p, "hubDeliveryNumber", trk, sizeof(trk), &p) != NULL;) {
            pthread_mutex_lock(&mu);
            if (npulled < MAXPROBES) {
                snprintf(pulled[npulled].tracking, TRK, "%s", trk);
                pulled[npulled].t = t;
                npulled++;
            }
            pthread_mutex_unlock(&mu);
            snprintf(ack, sizeof(ack),
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>"
                "<soap:Envelope xmlns:soap=\"http://schemas.xmlsoap.org/soap/envelope/\">"
                "<soap:Body><ns:AcknowledgeEnvelopeReceipt xmlns:ns=\"http://ephyto.ippc.int/\">"
                "<ns:hubTrackingNumber>%s</ns:hubTrackingNumber>"
                "</ns:AcknowledgeEnvelopeReceipt></soap:Body></soap:Envelope>", trk);
            curl_easy_setopt(a, CURLOPT_COPYPOSTFIELDS, ack);
            ab.n = 0;
            curl_easy_perform(a);
        }
        sleep_s(0.002);
    }
    curl_easy_cleanup(h);
    curl_easy_cleanup(a);
    curl_slist_free_all(hh);
    curl_slist_free_all(ha);
    free(b.p);
    free(ab.p);
    return NULL;
}

static void *
mail_main(void *arg)
{
    char path[4096], line[1024];

    (void)arg;
    while (!stop_all) {
        DIR *d = opendir(opt.maildir);
        struct dirent *e;

        while (d != NULL && (e = readdir(d)) != NULL) {
            struct stat sb;
            FILE *f;
            double mt;
            int found = 0;

            if (e->d_name[0] == '.')
                continue;
            snprintf(path, sizeof(path), "%s/%s", opt.maildir, e->d_name);
            if (stat(path, &sb) != 0 || !S_ISREG(sb.st_mode))
                continue;
            mt = (double)sb.st_mtim.tv_sec + sb.st_mtim.tv_nsec / 1e9;
            if (now_real() - mt < 0.05)
                continue;               /* maybe still being written */
            f = fopen(path, "r");
            if (f == NULL)
                continue;
            while (fgets(line, sizeof(line), f) != NULL) {
                if (strncmp(line, "X-ECert-Tracking: ", 18) == 0) {
                    line[strcspn(line, "\r\n")] = '\0';
                    pthread_mutex_lock(&mu);
                    if (nmailed < MAXPROBES) {
                        snprintf(mailed[nmailed].tracking, TRK, "%.*s", TRK - 1, line + 18);
                        mailed[nmailed].t = mt;
                        nmailed++;
                    }
                    pthread_mutex_unlock(&mu);
                    found = 1;
                    break;
                }
            }
            fclose(f);
            if (found)
                unlink(path);
        }
        if (d != NULL)
            closedir(d);
        sleep_s(0.01);
    }
    return NULL;
}

static int
cmp_seen(const void *a, const void *b)
{
    return strcmp(((const struct seen *)a)->tracking, ((const struct seen *)b)->tracking);
}

static int
cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return x < y ? -1 : x > y;
}

static double
pct(double *v, size_t n, double p)
{
    size_t i = (size_t)(p * (double)n + 0.999999);

    if (n == 0)
        return 0;
    if (i < 1)
        i = 1;
    if (i > n)
        i = n;
    return v[i - 1] * 1e3;
}

/* Latencies first-seen minus sent for the tracking numbers of sent[]. */
static size_t
join(struct seen *s, size_t ns, double *out)
{
    size_t i, n = 0;

    qsort(s, ns, sizeof(*s), cmp_seen);
    for (i = 0; i < nsent; i++) {
        struct seen key, *hit;

        snprintf(key.tracking, TRK, "%s", sent[i].tracking);
        hit = bsearch(&key, s, ns, sizeof(*s), cmp_seen);
        if (hit == NULL)
            continue;
        /* the earliest sighting of this number */
        while (hit > s && strcmp(hit[-1].tracking, key.tracking) == 0)
            hit--;
        out[n++] = hit->t - sent[i].t;
    }
    qsort(out, n, sizeof(*out), cmp_double);
    return n;
}

int
main(int argc, char **argv)
{
    pthread_t th, tp, tm;
    double *lp, *lm, grace_end;
    size_t np, nm;
    int i;

    for (i = 1; i + 1 < argc; i += 2) {
        const char *k = argv[i], *v = argv[i + 1];

        if (!strcmp(k, "-u")) opt.url = v;
        else if (!strcmp(k, "--cacert")) opt.cacert = v;
        else if (!strcmp(k, "--cert-in")) opt.cert_in = v;
        else if (!strcmp(k, "--key-in")) opt.key_in = v;
        else if (!strcmp(k, "--cert-pull")) opt.cert_pull = v;
        else if (!strcmp(k, "--key-pull")) opt.key_pull = v;
        else if (!strcmp(k, "-t")) opt.tmpl = v;
        else if (!strcmp(k, "-m")) opt.maildir = v;
        else if (!strcmp(k, "-r")) opt.rate = atof(v);
        else if (!strcmp(k, "-d")) opt.secs = atof(v);
        else if (!strcmp(k, "--start")) opt.start = strtoul(v, NULL, 10);
        else break;
    }
    if (i != argc || opt.url == NULL || opt.tmpl == NULL || opt.cert_in == NULL ||
        opt.cert_pull == NULL || opt.rate <= 0 || opt.rate > 1000 ||
        opt.secs <= 0 || opt.secs > 600) {
        fprintf(stderr, "usage: latprobe -u URL --cacert CA --cert-in C --key-in K "
                "--cert-pull C --key-pull K -t TEMPLATE [-r RATE] [-d SECS] "
                "[-m MAILDIR] [--start N]\n");
        return 2;
    }
    curl_global_init(CURL_GLOBAL_DEFAULT);
    sent = calloc(MAXPROBES, sizeof(*sent));
    pulled = calloc(MAXPROBES, sizeof(*pulled));
    mailed = calloc(MAXPROBES, sizeof(*mailed));
    handin_lat = calloc(MAXPROBES, sizeof(*handin_lat));
    lp = calloc(MAXPROBES, sizeof(*lp));
    lm = calloc(MAXPROBES, sizeof(*lm));
    pthread_create(&tp, NULL, pull_main, NULL);
    if (opt.maildir != NULL)
        pthread_create(&tm, NULL, mail_main, NULL);
    pthread_create(&th, NULL, handin_main, NULL);
    pthread_join(th, NULL);
    /* Wait (bounded) until every probe was seen where it should be. */
    grace_end = now_real() + 15;
    while (now_real() < grace_end) {
        int all;

        pthread_mutex_lock(&mu);
        all = npulled >= nsent && (opt.maildir == NULL || nmailed >= nsent);
        pthread_mutex_unlock(&mu);
        if (all)
            break;
        sleep_s(0.05);
    }
    sleep_s(0.1);
    stop_all = 1;
    pthread_join(tp, NULL);
    if (opt.maildir != NULL)
        pthread_join(tm, NULL);
    np = join(pulled, npulled, lp);
    nm = opt.maildir != NULL ? join(mailed, nmailed, lm) : 0;
    qsort(handin_lat, nsent, sizeof(*handin_lat), cmp_double);
    printf("latprobe: probes=%zu failed=%zu handin_p50_ms=%.1f handin_p99_ms=%.1f "
           "pull_seen=%zu pull_p50_ms=%.1f pull_p99_ms=%.1f "
           "mail_seen=%zu mail_p50_ms=%.1f mail_p99_ms=%.1f\n",
           nsent, nfail, pct(handin_lat, nsent, 0.5), pct(handin_lat, nsent, 0.99),
           np, pct(lp, np, 0.5), pct(lp, np, 0.99),
           nm, pct(lm, nm, 0.5), pct(lm, nm, 0.99));
    curl_global_cleanup();
    return nsent > 0 && np > 0 ? 0 : 1;
}
