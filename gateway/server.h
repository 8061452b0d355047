/*
 * server.h - the daemon's parts: TLS listener and worker pool
 * (server_tls.c) and the SOAP operations (hub_ops.c).
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */
#ifndef ECERT_SERVER_H
#define ECERT_SERVER_H

#include <signal.h>
#include <time.h>

#include "config.h"
#include "queue.h"
#include "sps.h"

struct soap;

/* Process-wide and read-only once the server runs. */
struct push;
struct gateway {
    const struct config *cfg;
    const struct sps_schema *schema;
    struct push *push;               /* NULL: no mail push configured */
};

/* One request on one connection, as seen by the operations
 * (soap->user points here). */
struct request {
    const struct gateway *gw;
    const struct partner *partner;   /* from the client certificate */
    struct queue *q;                 /* the worker's own store handle */
    const char *op;                  /* operation name, for the log */
    char tracking[Q_TRACKING_MAX];   /* tracking number involved, if any */
    const char *outcome;             /* "ok", "client-fault", ... */
    char note[256];                  /* short reason for the log */
    int count;                       /* envelopes returned */
    struct timespec t0;
    /* input guard (server_tls.c): what is left of this request's body,
     * -1 when unknown; a refused request and why */
    long long body_left;
    char tail[16];                   /* last bytes seen, for markup split
                                        across reads */
    size_t ntail;
    int u8_need;                     /* UTF-8 continuation bytes due */
    unsigned char u8_lo, u8_hi;      /* range of the next one */
    const char *refused;             /* NULL, or why the input is refused */
    /* non-zero when other connections wait for a worker; NULL: no pool
     * to park idle connections in (the connection is served to its end) */
    int (*others_waiting)(const struct request *r);
    void *pool;                      /* for others_waiting */
};

/* Run the listener and workers until *stop becomes non-zero; then stop
 * accepting, finish what is in flight and return 0 (1 on a start-up
 * failure, logged). */
int server_run(const struct gateway *gw, volatile sig_atomic_t *stop);

/* Build (and throw away) the TLS server context, to check the
 * configuration's certificate, key and CA.  0 ok; -1 with err. */
int server_tls_check(const struct config *cfg, char *err, size_t errlen);

/* Answer the request with a SOAP Fault carrying HubWebException:
 * client != 0 for soap:Client (the request is wrong), 0 for soap:Server
 * (try again later).  Returns SOAP_FAULT for the operation to return. */
int hub_fault(struct soap *soap, int client, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* server_serve.c: take gSOAP's own HTTP and receive callbacks from the
 * master context (once, before threads); stop ends keep-alive. */
void server_serve_init(struct soap *master, volatile sig_atomic_t *stop);

/* Serve the requests of one connection (soap->user = r, TLS done, the
 * connection's soap->keep_alive count set): installs the input guard,
 * loops while kept alive, logs each request.  With r->others_waiting set,
 * returns 1 when the connection is idle and may be parked (nothing
 * buffered, still kept alive); 0 when it is to be closed. */
int server_serve(struct soap *soap, struct request *r);

/* gSOAP's fault text on one line. */
void server_fault_line(struct soap *soap, char *buf, size_t len);

/* Attach HubWebException/message = msg as the fault's detail. */
void hub_fault_detail(struct soap *soap, const char *msg);

#endif
