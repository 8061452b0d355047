/*
 * fuzz_soap.c - libFuzzer harness for the SOAP request path: gSOAP's
 * HTTP and XML reading, the generated deserializers (build/gen/soapC.c,
 * soapServer.c) and the operations (gateway/hub_ops.c) running for real
 * against a store, the schema and a configuration.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * The input is what a partner sends on one connection after the TLS
 * handshake: one or more HTTP POST requests (keep-alive), or a bare SOAP
 * envelope (gSOAP accepts XML without HTTP headers).  The bytes are served
 * by a custom soap->frecv; answers go to a soap->fsend that discards them.
 * Each input runs on a copy of one master context set up as the daemon's
 * (gateway/server_tls.c master_new: SOAP_C_UTFSTRING | SOAP_XML_STRICT,
 * recv_maxlength, maxlevel, maxoccurs, keep-alive), through the same
 * serve loop, and is freed afterwards.  FUZZ_SOAP_ECHO=1 shows the
 * answers on stderr.
 *
 * The caller is partner "bo-all" (BO, submit + pull) unless an HTTP
 * header "X-Fuzz-Partner: <id>" names another configured partner: that
 * stands in for the client certificate.  The configuration is built in
 * code; the store is a real SQLite file in a private temporary directory,
 * preloaded with three envelopes under fixed tracking numbers (see
 * TRACK_A/B/C) so that requests naming them find something.  The store
 * keeps what inputs hand in or acknowledge, as the daemon's would.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <sqlite3.h>

#include "soapH.h"
#include "DeliveryServiceSoapBinding.nsmap"
#include "push.h"
#include "log.h"
#include "server.h"
#include "fuzz_common.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_KEEP_ALIVE 1000      /* as in server_tls.c */
#define MAX_OCCURS     10000

/* Envelopes preloaded into the store (also used by the seed requests). */
#define TRACK_A "ECG20240101-00000000000000a1"   /* BO->EC, by bo-all */
#define TRACK_B "ECG20240101-00000000000000b2"   /* EC->BO, binary content */
#define TRACK_C "ECG20240101-00000000000000c3"   /* EC->BO, text */

static char *ec_to[] = { "ec-nppo@partner.invalid" };
static struct partner_mail ec_mail = { ec_to, 1, NULL, 0 };
static struct partner partners[] = {
    { "bo-all", "BO", ROLE_SUBMIT | ROLE_PULL, { 1 }, 1, NULL },
    { "bo-issuer", "BO", ROLE_SUBMIT, { 2 }, 2, NULL },
    { "ec-nppo", "EC", ROLE_SUBMIT | ROLE_PULL, { 3 }, 3, &ec_mail },
    { "pe-pull", "PE", ROLE_PULL, { 4 }, 4, NULL },
    { "nl-submit", "NL", ROLE_SUBMIT, { 5 }, 5, NULL },
};
static struct config cfg;
static struct gateway gw;
static struct sps_schema *schema;
static struct queue *store;
static struct soap *master;
static volatile sig_atomic_t fuzz_stop;
static int (*http_parsehdr)(struct soap *, const char *, const char *);

/* The current input, served by fuzz_recv. */
static const uint8_t *in_p;
static size_t in_n;

static size_t
fuzz_recv(struct soap *soap, char *buf, size_t len)
{
    size_t k = len < in_n ? len : in_n;

    (void)soap;
    memcpy(buf, in_p, k);
    in_p += k;
    in_n -= k;
    return k;
}

/* Answers are discarded; FUZZ_SOAP_ECHO=1 in the environment shows them
 * on stderr instead (to check the seeds: ./fuzz_soap FILE). */
static int echo;

static int
fuzz_send(struct soap *soap, const char *s, size_t n)
{
    (void)soap;
    if (echo)
        fwrite(s, 1, n, stderr);
    return SOAP_OK;
}

static int
fuzz_parsehdr(struct soap *soap, const char *key, const char *val)
{
    struct request *r = soap->user;

    if (key != NULL && val != NULL && strcasecmp(key, "X-Fuzz-Partner") == 0) {
        const struct partner *p = config_partner_by_id(&cfg, val);

        if (p != NULL)
            r->partner = p;
        return SOAP_OK;
    }
    return http_parsehdr(soap, key, val);
}

/* ---- set-up --------------------------------------------------------------- */

static void
preload(const char *path, const char *fixed, const struct q_handin *in)
{
    char tracking[Q_TRACKING_MAX], err[512], *sql;
    sqlite3 *db;
    int dup = 0;

    if (queue_handin(store, in, tracking, &dup, err, sizeof err) != Q_OK)
        fuzz_die("preload %s: %s", fixed, err);
    /* Tracking numbers are random; give this one a known name. */
    if (sqlite3_open(path, &db) != SQLITE_OK)
        fuzz_die("sqlite3_open %s", path);
    sql = sqlite3_mprintf("UPDATE certificate SET tracking = %Q "
                          "WHERE tracking = %Q", fixed, tracking);
    if (sql == NULL || sqlite3_exec(db, sql, NULL, NULL, NULL) != SQLITE_OK ||
        sqlite3_changes(db) != 1)
        fuzz_die("rename tracking %s: %s", tracking, sqlite3_errmsg(db));
    sqlite3_free(sql);
    sqlite3_close(db);
}

static void
free_globals(void)
{
    if (master != NULL) {
        soap_destroy(master);
        soap_end(master);
        soap_free(master);
    }
    queue_close(store);
    sps_schema_free(schema);
    free(cfg.store);
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    static const unsigned char text[] =
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<rsm:SPSCertificate "
        "xmlns:rsm=\"urn:un:unece:uncefact:data:standard:SPSCertificate:17\"/>\n";
    static const unsigned char binary[] =
        "\xff\xfe<\0?\0x\0m\0l\0 \0v\0e\0r\0s\0i\0o\0n\0=\0\"\0001\0.\0000\0\"\0";
    static const struct q_addressee to_ec[] = {
        { "ec-nppo", Q_CH_PULL }, { "ec-nppo", Q_CH_SMTP },
    };
    static const struct q_addressee to_bo[] = { { "bo-all", Q_CH_PULL } };
    static char dir[4096];
    struct q_handin in;
    char err[512];

    (void)argc;
    (void)argv;
    echo = getenv("FUZZ_SOAP_ECHO") != NULL;
    sps_init();
    snprintf(dir, sizeof dir, "%s/wsdl/spscert", fuzz_srcdir());
    if (sps_schema_load(dir, &schema, err, sizeof err) != 0)
        fuzz_die("schema %s: %s", dir, err);

    cfg.path = "fuzz";
    cfg.country = "BO";
    cfg.listen_addr = "127.0.0.1";
    cfg.listen_port = 8443;
    cfg.store = fuzz_path("ecert.db");
    cfg.schema_dir = dir;               /* not read after start-up */
    cfg.max_request_bytes = 1 << 16;    /* within reach of -max_len */
    cfg.xml_depth = 64;
    cfg.max_pull = 5;
    cfg.recv_timeout = cfg.send_timeout = cfg.idle_timeout = 30;
    cfg.workers = 1;
    cfg.max_connections = 1;
    cfg.partners = partners;
    cfg.npartners = sizeof partners / sizeof partners[0];
    gw.cfg = &cfg;
    gw.schema = schema;
    gw.push = NULL;
    atexit(free_globals);

    if (queue_open(&store, cfg.store, 0, err, sizeof err) != Q_OK)
        fuzz_die("store %s: %s", cfg.store, err);
    queue_set_sync(store, 0);           /* no fsync: speed, not durability */

    memset(&in, 0, sizeof in);
    in.from = "BO";
    in.to = "EC";
    in.type = 851;
    in.status = 70;
    in.number = "491412337BO";
    in.sender = "bo-all";
    in.content = text;
    in.content_len = sizeof text - 1;
    in.to_partners = to_ec;
    in.nto = 2;
    preload(cfg.store, TRACK_A, &in);
    in.from = "EC";
    in.to = "BO";
    in.number = "EC-2024-0001";
    in.sender = "ec-nppo";
    in.content = binary;
    in.content_len = sizeof binary - 1;
    in.to_partners = to_bo;
    in.nto = 1;
    preload(cfg.store, TRACK_B, &in);
    in.number = "EC-2024-0002";
    in.content = text;
    in.content_len = sizeof text - 1;
    preload(cfg.store, TRACK_C, &in);

    /* The daemon's master context (server_tls.c master_new), minus TLS
     * and sockets. */
    master = soap_new1(SOAP_C_UTFSTRING | SOAP_XML_STRICT | SOAP_IO_KEEPALIVE);
    if (master == NULL)
        fuzz_die("soap_new1");
    soap_set_namespaces(master, namespaces);
    master->recv_timeout = cfg.recv_timeout;
    master->send_timeout = cfg.send_timeout;
    master->transfer_timeout = cfg.recv_timeout * 4;
    master->recv_maxlength = (ULONG64)cfg.max_request_bytes;
    master->maxlevel = (unsigned int)cfg.xml_depth;
    master->maxoccurs = MAX_OCCURS;
    master->max_keep_alive = MAX_KEEP_ALIVE;
    master->frecv = fuzz_recv;
    master->fsend = fuzz_send;
    http_parsehdr = master->fparsehdr;
    master->fparsehdr = fuzz_parsehdr;
    server_serve_init(master, &fuzz_stop);
    log_open("fuzz_soap", LOG_TO_NONE);     /* no line per input */
    return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct request r;
    struct soap *soap;

    soap = soap_copy(master);
    if (soap == NULL)
        abort();
    memset(&r, 0, sizeof r);
    r.gw = &gw;
    r.q = store;
    r.partner = &partners[0];
    soap->user = &r;
    in_p = data;
    in_n = size;
    soap->keep_alive = soap->max_keep_alive + 1;   /* a new connection */
    (void)server_serve(soap, &r);      /* the daemon's own loop and guard */
    soap->user = NULL;
    soap_destroy(soap);
    soap_end(soap);
    soap_free(soap);
    return 0;
}
