/*
 * stats_hook.c - linked into a benchmark build of ecertd (build/bench/
 * ecertd-stats) only: when ECERTD_BENCH_STATS=FILE and
 * ECERTD_BENCH_STORE=STORE are set, a thread writes the store's group
 * commit counters (queue_stats) as "handins=H commits=C" to FILE every
 * 200 ms.  Its own store handle shares the daemon's committer (one per
 * store file and process) and hands nothing in.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "queue.h"

static void *
stats_main(void *arg)
{
    const char *store = getenv("ECERTD_BENCH_STORE");
    const char *out = getenv("ECERTD_BENCH_STATS");
    struct queue *q = NULL;
    char tmp[4200], err[512];
    struct timespec ts = {0, 200 * 1000 * 1000};

    (void)arg;
    for (;;) {
        uint64_t h = 0, c = 0;
        FILE *f;

        nanosleep(&ts, NULL);
        if (q == NULL && access(store, F_OK) == 0 &&
            queue_open(&q, store, 0, err, sizeof(err)) != Q_OK)
            q = NULL;
        if (q == NULL)
            continue;
        queue_stats(q, &h, &c);
        snprintf(tmp, sizeof(tmp), "%s.tmp", out);
        f = fopen(tmp, "w");
        if (f == NULL)
            continue;
        fprintf(f, "handins=%llu commits=%llu\n", (unsigned long long)h,
                (unsigned long long)c);
        fclose(f);
        rename(tmp, out);
    }
    return NULL;
}

__attribute__((constructor)) static void
stats_start(void)
{
    pthread_t t;

    if (getenv("ECERTD_BENCH_STATS") != NULL && getenv("ECERTD_BENCH_STORE") != NULL &&
        pthread_create(&t, NULL, stats_main, NULL) == 0)
        pthread_detach(t);
}
