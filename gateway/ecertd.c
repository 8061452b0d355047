/*
 * ecertd - the ecert-gateway daemon.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 *   ecertd [-f] [-c FILE]     run (foreground with -f, logging to stderr)
 *   ecertd -t [-c FILE]       check the configuration and exit
 *
 * SIGTERM/SIGINT: stop accepting, finish requests in flight, exit 0.
 */
#include <errno.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "stdsoap2.h"
#include "config.h"
#include "log.h"
#include "push.h"
#include "queue.h"
#include "server.h"
#include "sps.h"

#define DEFAULT_CONFIG "/etc/ecert-gateway/ecertd.conf"
#define VERSION "0.1.0"

static volatile sig_atomic_t stopping;

static void
on_signal(int sig)
{
    (void)sig;
    stopping = 1;
}

static void
usage(FILE *f)
{
    fprintf(f, "usage: ecertd [-f] [-t] [-c FILE]\n"
               "  -c FILE  configuration (default %s)\n"
               "  -f       stay in the foreground, log to stderr\n"
               "  -t       check the configuration and exit\n"
               "  -V       print the version\n", DEFAULT_CONFIG);
}

int
main(int argc, char **argv)
{
    const char *path = getenv("ECERT_CONFIG");
    struct config *cfg = NULL;
    struct sps_schema *schema = NULL;
    struct queue *q = NULL;
    struct push *push = NULL;
    struct gateway gw;
    struct sigaction sa;
    int opt, foreground = 0, test = 0, rc = 1;
    char err[1024];

    if (path == NULL)
        path = DEFAULT_CONFIG;
    /* Few malloc arenas: per-thread arenas would each keep the peak of
     * the largest request their thread ever parsed. */
    mallopt(M_ARENA_MAX, 2);
    while ((opt = getopt(argc, argv, "c:fthV")) != -1) {
        switch (opt) {
        case 'c':
            path = optarg;
            break;
        case 'f':
            foreground = 1;
            break;
        case 't':
            test = 1;
            break;
        case 'h':
            usage(stdout);
            return 0;
        case 'V':
            printf("ecertd %s\n", VERSION);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind != argc) {
        usage(stderr);
        return 2;
    }

    if (config_load(path, &cfg, err, sizeof(err)) != 0) {
        fprintf(stderr, "ecertd: %s\n", err);
        goto out;
    }
    sps_init();
    soap_ssl_init();
    if (sps_schema_load(cfg->schema_dir, &schema, err, sizeof(err)) != 0) {
        fprintf(stderr, "ecertd: %s: schema_dir: %s\n", path, err);
        goto out;
    }
    if (server_tls_check(cfg, err, sizeof(err)) != 0) {
        fprintf(stderr, "ecertd: %s: %s\n", path, err);
        goto out;
    }
    if (push_init(cfg, &push, err, sizeof(err)) != 0) {
        fprintf(stderr, "ecertd: %s: mail: %s\n", path, err);
        goto out;
    }
    if (test) {
        printf("configuration OK\n");
        rc = 0;
        goto out;
    }
    /* Create or check the store before anything is accepted. */
    if (queue_open(&q, cfg->store, 0, err, sizeof(err)) != Q_OK) {
        fprintf(stderr, "ecertd: store %s: %s\n", cfg->store, err);
        goto out;
    }
    queue_close(q);
    q = NULL;

    if (!foreground) {
        if (daemon(0, 0) != 0) {
            fprintf(stderr, "ecertd: cannot go to the background: %s\n",
                    strerror(errno));
            goto out;
        }
        log_open("ecertd", LOG_TO_SYSLOG);
    } else {
        log_open("ecertd", LOG_TO_STDERR);
    }

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sa.sa_handler = SIG_IGN;
    sigaction(SIGPIPE, &sa, NULL);

    if (push_start(push, err, sizeof(err)) != 0) {
        log_error("mail push: %s", err);
        goto out;
    }
    gw.cfg = cfg;
    gw.schema = schema;
    gw.push = push;
    rc = server_run(&gw, &stopping);
out:
    push_stop(push);
    sps_schema_free(schema);
    config_free(cfg);
    return rc;
}
