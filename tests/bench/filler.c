/*
 * filler.c - fill a store with N certificates through the store API
 * (queue_handin), for the scale and push benchmarks.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 *   filler -s STORE -n N -i SAMPLE [-p PARTNERS] [-0 ID:CC] [-c CHANNELS]
 *          [-w WAITING] [-x PREFIX] [-S] [-o FILE] [-T THREADS]
 *   filler --partners P        print the libconfig entries of the made-up
 *                              partners 1..P-1 (fake fingerprints)
 *
 * Certificate k (0-based) is the sample with its number 491412337BO
 * replaced by PREFIX<k>, issued by BO (sender bo-issuer), addressed to
 * partner k % PARTNERS: partner 0 is ID:CC (default ec-nppo:EC), partner i
 * (i >= 1) is bench-pNN with a made-up country.  CHANNELS: pull (default),
 * smtp or both.  With -w W, partner 0's pull deliveries are acknowledged
 * as they are made except its last W (so its waiting set is W whatever N
 * is); -w -1 (default) acknowledges nothing.  Store sync is off unless -S.
 * -T THREADS (default 1) hand in concurrently, each with its own handle, so
 * the store's group commit batches them (costs more CPU than it saves here).
 * -o FILE receives "first=TRACKING last=TRACKING" of partner 0.
 * Prints one line: certificates, seconds, rate, store bytes per certificate.
 */
#include <getopt.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "queue.h"

#define SAMPLE_NUMBER "491412337BO"

static double
now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void
partner_name(int i, char *id, size_t idlen, char cc[3])
{
    snprintf(id, idlen, "bench-p%02d", i);
    cc[0] = "QRST"[(i / 26) % 4];
    cc[1] = (char)('A' + i % 26);
    cc[2] = '\0';
}

static long long
file_size(const char *path)
{
    struct stat sb;

    return stat(path, &sb) == 0 ? (long long)sb.st_size : 0;
}

/* Shared, read-only while the threads run. */
static struct {
    long long n, count0;
    int npart, nthreads, waiting, sync_on;
    const char *store, *prefix, *chans;
    const char *tmpl, *hit;
    size_t pre, post;
    char (*ids)[Q_PARTNER_MAX];
    char (*ccs)[3];
    double t0;
} G;

struct filler_thread {
    pthread_t tid;
    int idx, failed;
    long long nack, first_k, last_k;
    char first[Q_TRACKING_MAX], last[Q_TRACKING_MAX];
};

/* Certificates idx, idx + T, idx + 2T, ... through this thread's own
 * handle; concurrent hand-ins share the store's group commit. */
static void *
fill_main(void *arg)
{
    struct filler_thread *th = arg;
    struct queue *q;
    char err[1024], tracking[Q_TRACKING_MAX], *buf;
    double t, tnext = G.t0 + 10;
    long long k;

    th->first_k = th->last_k = -1;
    if (queue_open(&q, G.store, 0, err, sizeof(err)) != Q_OK) {
        fprintf(stderr, "filler: %s\n", err);
        th->failed = 1;
        return NULL;
    }
    if (!G.sync_on)
        queue_set_sync(q, 0);
    buf = malloc(G.pre + G.post + 128);
    for (k = th->idx; k < G.n; k += G.nthreads) {
        struct q_addressee to[2];
        struct q_handin in;
        char num[64];
        int p = (int)(k % G.npart), nto = 0, dup = 0, nl;

        nl = snprintf(num, sizeof(num), "%s%09lld", G.prefix, k);
        memcpy(buf, G.tmpl, G.pre);
        memcpy(buf + G.pre, num, (size_t)nl);
        memcpy(buf + G.pre + nl, G.hit + strlen(SAMPLE_NUMBER), G.post);
        if (strcmp(G.chans, "smtp") != 0)
            to[nto++] = (struct q_addressee){G.ids[p], Q_CH_PULL};
        if (strcmp(G.chans, "pull") != 0)
            to[nto++] = (struct q_addressee){G.ids[p], Q_CH_SMTP};
        memset(&in, 0, sizeof(in));
        in.from = "BO";
        in.to = G.ccs[p];
        in.type = 851;
        in.status = 70;
        in.number = num;
        in.sender = "bo-issuer";
        in.content = (const unsigned char *)buf;
        in.content_len = G.pre + (size_t)nl + G.post;
        in.to_partners = to;
        in.nto = (size_t)nto;
        if (queue_handin(q, &in, tracking, &dup, err, sizeof(err)) != Q_OK) {
            fprintf(stderr, "filler: certificate %lld: %s\n", k, err);
            th->failed = 1;
            break;
        }
        if (p == 0) {
            if (th->first_k < 0) {
                th->first_k = k;
                snprintf(th->first, sizeof(th->first), "%s", tracking);
            }
            th->last_k = k;
            snprintf(th->last, sizeof(th->last), "%s", tracking);
            if (G.waiting >= 0 && k / G.npart < G.count0 - G.waiting &&
                strcmp(G.chans, "smtp") != 0) {
                if (queue_ack(q, G.ids[0], tracking, Q_DELIVERED, NULL, err,
                              sizeof(err)) != Q_OK) {
                    fprintf(stderr, "filler: ack %s: %s\n", tracking, err);
                    th->failed = 1;
                    break;
                }
                th->nack++;
            }
        }
        if (th->idx == 0 && ((k / G.nthreads) & 255) == 0 &&
            (t = now()) >= tnext) {
            double rate = (double)k / (t - G.t0);

            fprintf(stderr, "filler: %lld of %lld, %.0f/s, %.0f s to go\n",
                    k, G.n, rate, (double)(G.n - k) / rate);
            tnext = t + 10;
        }
    }
    free(buf);
    queue_close(q);
    return NULL;
}

static void
usage(void)
{
    fprintf(stderr, "usage: filler -s STORE -n N -i SAMPLE [-p PARTNERS] [-0 ID:CC]\n"
                    "              [-c pull|smtp|both] [-w WAITING] [-x PREFIX] [-S] [-o FILE]\n"
                    "              [-T THREADS]\n"
                    "       filler --partners P\n");
    exit(2);
}

int
main(int argc, char **argv)
{
    static const struct option lo[] = {{"partners", 1, NULL, 'L'},
                                       {NULL, 0, NULL, 0}};
    const char *store = NULL, *sample = NULL, *prefix = "FILL", *out = NULL;
    const char *chans = "pull";
    char p0id[Q_PARTNER_MAX] = "ec-nppo", p0cc[3] = "EC";
    long long n = 0, nack = 0, count0;
    int npart = 100, sync_on = 0, waiting = -1, nthreads = 1, ch, i;
    long long firstk = -1, lastk = -1;
    struct filler_thread *th;
    char *tmpl, *hit, err[1024];
    char first[Q_TRACKING_MAX] = "", last[Q_TRACKING_MAX] = "", wal[4200];
    char (*ids)[Q_PARTNER_MAX], (*ccs)[3];
    size_t tlen, pre, post;
    struct queue *q;
    FILE *f;
    double t0, t;
    long long bytes;

    while ((ch = getopt_long(argc, argv, "s:n:i:p:0:c:w:x:So:T:", lo, NULL)) != -1) {
        switch (ch) {
        case 's': store = optarg; break;
        case 'n': n = atoll(optarg); break;
        case 'i': sample = optarg; break;
        case 'p': npart = atoi(optarg); break;
        case '0':
            if (sscanf(optarg, "%63[^:]:%2[A-Z]", p0id, p0cc) != 2)
                usage();
            break;
        case 'c': chans = optarg; break;
        case 'w': waiting = atoi(optarg); break;
        case 'x': prefix = optarg; break;
        case 'S': sync_on = 1; break;
        case 'o': out = optarg; break;
        case 'T': nthreads = atoi(optarg); break;
        case 'L':
            for (i = 1; i < atoi(optarg); i++) {
                char id[Q_PARTNER_MAX], cc[3];

                partner_name(i, id, sizeof(id), cc);
                printf("  { id = \"%s\"; country = \"%s\"; roles = [ \"pull\" ];"
                       " fingerprint = \"sha256:%064x\"; },\n", id, cc, 0x5ca1e000 + i);
            }
            return 0;
        default: usage();
        }
    }
    if (store == NULL || sample == NULL || n < 1 || npart < 1 || npart > 1000 ||
        nthreads < 1 || nthreads > 64 ||
        optind != argc || (strcmp(chans, "pull") && strcmp(chans, "smtp") &&
                           strcmp(chans, "both")))
        usage();

    f = fopen(sample, "rb");
    if (f == NULL) {
        perror(sample);
        return 1;
    }
    tmpl = malloc(1 << 20);
    tlen = fread(tmpl, 1, (1 << 20) - 1, f);
    fclose(f);
    tmpl[tlen] = '\0';
    hit = strstr(tmpl, SAMPLE_NUMBER);
    if (hit == NULL) {
        fprintf(stderr, "filler: %s does not hold %s\n", sample, SAMPLE_NUMBER);
        return 1;
    }
    pre = (size_t)(hit - tmpl);
    post = tlen - pre - strlen(SAMPLE_NUMBER);

    ids = calloc((size_t)npart, sizeof(*ids));
    ccs = calloc((size_t)npart, sizeof(*ccs));
    for (i = 0; i < npart; i++)
        if (i == 0) {
            snprintf(ids[0], sizeof(ids[0]), "%s", p0id);
            memcpy(ccs[0], p0cc, 3);
        } else {
            partner_name(i, ids[i], sizeof(ids[i]), ccs[i]);
        }

    count0 = (n + npart - 1) / npart;
    G.n = n;
    G.npart = npart;
    G.nthreads = nthreads;
    G.waiting = waiting;
    G.sync_on = sync_on;
    G.store = store;
    G.prefix = prefix;
    G.chans = chans;
    G.tmpl = tmpl;
    G.hit = hit;
    G.pre = pre;
    G.post = post;
    G.ids = ids;
    G.ccs = ccs;
    G.count0 = count0;
    /* Open (create) the store once before the threads share it. */
    if (queue_open(&q, store, 0, err, sizeof(err)) != Q_OK) {
        fprintf(stderr, "filler: %s\n", err);
        return 1;
    }
    t0 = now();
    G.t0 = t0;
    th = calloc((size_t)nthreads, sizeof(*th));
    for (i = 0; i < nthreads; i++) {
        th[i].idx = i;
        if (pthread_create(&th[i].tid, NULL, fill_main, &th[i]) != 0) {
            fprintf(stderr, "filler: cannot start a thread\n");
            return 1;
        }
    }
    for (i = 0; i < nthreads; i++) {
        pthread_join(th[i].tid, NULL);
        if (th[i].failed)
            return 1;
        nack += th[i].nack;
        if (th[i].first_k >= 0 && (firstk < 0 || th[i].first_k < firstk)) {
            firstk = th[i].first_k;
            snprintf(first, sizeof(first), "%s", th[i].first);
        }
        if (th[i].last_k > lastk) {
            lastk = th[i].last_k;
            snprintf(last, sizeof(last), "%s", th[i].last);
        }
    }
    t = now() - t0;
    queue_close(q);
    snprintf(wal, sizeof(wal), "%s-wal", store);
    bytes = file_size(store) + file_size(wal);
    if (out != NULL) {
        f = fopen(out, "w");
        if (f != NULL) {
            fprintf(f, "first=%s last=%s\n", first, last);
            fclose(f);
        }
    }
    printf("filler: certificates=%lld partners=%d acked=%lld secs=%.2f rate=%.0f "
           "store_bytes=%lld bytes_per_cert=%.0f sync=%s\n", n, npart, nack, t,
           (double)n / t, bytes, (double)bytes / (double)n, sync_on ? "on" : "off");
    free(tmpl);
    free(ids);
    free(ccs);
    return 0;
}
