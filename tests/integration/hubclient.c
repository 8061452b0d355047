/*
 * hubclient.c - a command-line client for the ePhyto Hub DeliveryService,
 * built from the hub's own WSDL (build/gen-hub).  The integration suite uses
 * it to show that a partner written against the real hub can talk to ecertd.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * Usage:
 *   hubclient -u URL --cert CERT.pem --key KEY.pem --cacert CA.pem
 *             [--no-cert] [--tls1.1] [--timeout SECONDS] OP ARGS...
 *
 * Exit status: 0 success, 4 SOAP fault from the server, 5 transport or TLS
 * failure, 2 usage or local error.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <signal.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/ssl.h>

#include "soapH.h"
#include "DeliveryServiceSoapBinding.nsmap"

#define EXIT_FAULT 4
#define EXIT_TRANSPORT 5
#define EXIT_USAGE 2

#define MAX_POS 16

struct opts {
    const char *url;
    const char *cert;
    const char *key;
    const char *cacert;
    int no_cert;
    int tls11;
    int timeout;
    int base64;
    int validate;
    const char *out;
    const char *pos[MAX_POS];   /* OP and its arguments */
    int npos;
};

static void usage(void)
{
    fputs("usage: hubclient -u URL --cert CERT.pem --key KEY.pem --cacert CA.pem\n"
          "                 [--no-cert] [--tls1.1] [--timeout S] OP ARGS...\n"
          "  deliver FILE FROM TO TYPE STATUS NUMBER [--base64] [--validate]\n"
          "  headers | underdelivery | pull [--out DIR] | nppos\n"
          "  pullone TRACKING [--out FILE]\n"
          "  ack TRACKING | advack TRACKING MSG | failack TRACKING MSG\n"
          "  track TRACKING | validate FILE | raw OPNAME\n", stderr);
    exit(EXIT_USAGE);
}

/* Print a value on one line: NULL as empty, control characters as spaces. */
static void put_value(const char *s)
{
    if (s == NULL)
        return;
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        putchar(c < 0x20 || c == 0x7f ? ' ' : c);
    }
}

static int read_file(const char *path, char **buf, size_t *len)
{
    FILE *fp = fopen(path, "rb");
    char *data = NULL;
    size_t cap = 0, n = 0;
    int rc = -1;

    if (fp == NULL) {
        fprintf(stderr, "hubclient: %s: %s\n", path, strerror(errno));
        return -1;
    }
    for (;;) {
        size_t got;
        if (cap - n < 65536) {
            char *p = realloc(data, cap + 65536 + 1);
            if (p == NULL)
                goto out;
            data = p;
            cap += 65536;
        }
        got = fread(data + n, 1, cap - n, fp);
        n += got;
        if (got == 0)
            break;
    }
    if (ferror(fp)) {
        fprintf(stderr, "hubclient: %s: read error\n", path);
        goto out;
    }
    data[n] = '\0';
    *buf = data;
    *len = n;
    data = NULL;
    rc = 0;
out:
    free(data);
    fclose(fp);
    return rc;
}

static int write_file(const char *path, const char *data)
{
    FILE *fp = fopen(path, "wb");
    size_t len = data ? strlen(data) : 0;

    if (fp == NULL) {
        fprintf(stderr, "hubclient: %s: %s\n", path, strerror(errno));
        return -1;
    }
    if ((len && fwrite(data, 1, len, fp) != len) || fclose(fp) != 0) {
        fprintf(stderr, "hubclient: %s: write error\n", path);
        return -1;
    }
    return 0;
}

static char *b64_encode(const unsigned char *in, size_t len)
{
    char *out = malloc(4 * ((len + 2) / 3) + 1);

    if (out != NULL)
        EVP_EncodeBlock((unsigned char *)out, in, (int)len);
    return out;
}

/* Report the outcome of a call and return the exit status. */
static int report_error(struct soap *soap)
{
    const char **code = soap_faultcode(soap);
    const char **reason = soap_faultstring(soap);
    const char *detail = NULL;

    if (soap->fault && soap->fault->detail
        && soap->fault->detail->ns1__HubWebException)
        detail = soap->fault->detail->ns1__HubWebException->message;
    if (detail == NULL && soap->fault && soap->fault->SOAP_ENV__Detail
        && soap->fault->SOAP_ENV__Detail->ns1__HubWebException)
        detail = soap->fault->SOAP_ENV__Detail->ns1__HubWebException->message;

    switch (soap->error) {
    case SOAP_FAULT:
    case SOAP_CLI_FAULT:
    case SOAP_SVR_FAULT:
    case SOAP_MUSTUNDERSTAND:
    case SOAP_VERSIONMISMATCH:
        fputs("fault code=", stdout);
        put_value(code ? *code : NULL);
        fputs(" reason=", stdout);
        put_value(reason ? *reason : NULL);
        if (detail) {
            fputs(" detail=", stdout);
            put_value(detail);
        }
        putchar('\n');
        return EXIT_FAULT;
    case SOAP_EOF:
        puts("error connection closed by the server (or TLS handshake refused)");
        return EXIT_TRANSPORT;
    default:
        printf("error %d ", soap->error);
        put_value(reason && *reason ? *reason : "unknown error");
        {
            const char **d = soap_faultdetail(soap);
            if (d && *d) {
                fputs(": ", stdout);
                put_value(*d);
            }
        }
        putchar('\n');
        return EXIT_TRANSPORT;
    }
}

static void print_header_line(const char *tag, const char *tracking,
                              const char *from, const char *to, int type,
                              int status, const char *number)
{
    fputs(tag, stdout);
    fputs(" tracking=", stdout);
    put_value(tracking);
    fputs(" from=", stdout);
    put_value(from);
    fputs(" to=", stdout);
    put_value(to);
    printf(" type=%d status=%d number=", type, status);
    put_value(number);
    putchar('\n');
}

static void print_headers(struct ns7__ArrayOfEnvelopeHeader *a)
{
    int i;

    if (a == NULL)
        return;
    for (i = 0; i < a->__sizeEnvelopeHeader; i++) {
        struct ns7__EnvelopeHeader *h = &a->ns7__EnvelopeHeader[i];
        print_header_line("header", h->ns7__hubDeliveryNumber, h->ns7__From,
                          h->ns7__To, h->ns7__CertificateType,
                          h->ns7__CertificateStatus,
                          h->ns7__NPPOCertificateNumber);
    }
}

static void print_envelope(const struct ns7__Envelope *e)
{
    fputs("envelope tracking=", stdout);
    put_value(e->ns7__hubDeliveryNumber);
    fputs(" number=", stdout);
    put_value(e->ns7__NPPOCertificateNumber);
    printf(" bytes=%zu\n", e->ns7__Content ? strlen(e->ns7__Content) : (size_t)0);
}

/* A tracking number becomes part of a file name: allow only a safe set. */
static int safe_name(const char *s)
{
    if (s == NULL || *s == '\0' || *s == '.')
        return 0;
    for (; *s; s++)
        if (!((*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z')
              || (*s >= '0' && *s <= '9') || *s == '-' || *s == '_' || *s == '.'))
            return 0;
    return 1;
}

static int setup_tls(struct soap *soap, const struct opts *o)
{
    unsigned short flags = SOAP_SSL_DEFAULT;
    SSL_CTX *ctx;

    if (o->tls11)
        flags |= SOAP_TLSv1_1;
    if (soap_ssl_client_context(soap, flags, NULL, NULL, o->cacert, NULL, NULL))
        return -1;
    ctx = soap->ctx;
    if (ctx == NULL) {
        fprintf(stderr, "hubclient: no TLS context\n");
        return -2;
    }
    if (o->tls11) {
        /* OpenSSL 3 refuses TLS 1.1 at the default security level. */
        SSL_CTX_set_security_level(ctx, 0);
        SSL_CTX_set_cipher_list(ctx, "DEFAULT:@SECLEVEL=0");
        SSL_CTX_set_min_proto_version(ctx, TLS1_1_VERSION);
        SSL_CTX_set_max_proto_version(ctx, TLS1_1_VERSION);
    }
    if (!o->no_cert) {
        if (SSL_CTX_use_certificate_chain_file(ctx, o->cert) != 1) {
            fprintf(stderr, "hubclient: cannot load certificate %s\n", o->cert);
            return -2;
        }
        if (SSL_CTX_use_PrivateKey_file(ctx, o->key, SSL_FILETYPE_PEM) != 1
            || SSL_CTX_check_private_key(ctx) != 1) {
            fprintf(stderr, "hubclient: cannot load key %s\n", o->key);
            return -2;
        }
    }
    return 0;
}

static void parse_args(int argc, char **argv, struct opts *o)
{
    int i;

    memset(o, 0, sizeof *o);
    o->timeout = 30;
    for (i = 1; i < argc; i++) {
        const char *a = argv[i];
#define NEEDARG() do { if (i + 1 >= argc) usage(); } while (0)
        if (!strcmp(a, "-u") || !strcmp(a, "--url")) {
            NEEDARG(); o->url = argv[++i];
        } else if (!strcmp(a, "--cert")) {
            NEEDARG(); o->cert = argv[++i];
        } else if (!strcmp(a, "--key")) {
            NEEDARG(); o->key = argv[++i];
        } else if (!strcmp(a, "--cacert")) {
            NEEDARG(); o->cacert = argv[++i];
        } else if (!strcmp(a, "--timeout")) {
            NEEDARG(); o->timeout = atoi(argv[++i]);
        } else if (!strcmp(a, "--out")) {
            NEEDARG(); o->out = argv[++i];
        } else if (!strcmp(a, "--no-cert")) {
            o->no_cert = 1;
        } else if (!strcmp(a, "--tls1.1")) {
            o->tls11 = 1;
        } else if (!strcmp(a, "--base64")) {
            o->base64 = 1;
        } else if (!strcmp(a, "--validate")) {
            o->validate = 1;
        } else if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage();
        } else if (a[0] == '-' && a[1] == '-') {
            fprintf(stderr, "hubclient: unknown option %s\n", a);
            usage();
        } else {
            if (o->npos >= MAX_POS)
                usage();
            o->pos[o->npos++] = a;
        }
#undef NEEDARG
    }
    if (o->url == NULL || o->cacert == NULL || o->npos < 1)
        usage();
    if (!o->no_cert && (o->cert == NULL || o->key == NULL))
        usage();
    if (o->timeout <= 0)
        o->timeout = 30;
}

static int need(const struct opts *o, int n)
{
    if (o->npos != n + 1) {
        fprintf(stderr, "hubclient: %s takes %d argument(s)\n", o->pos[0], n);
        usage();
    }
    return 0;
}

static int op_deliver(struct soap *soap, const struct opts *o)
{
    struct ns7__Envelope env;
    struct ns7__EnvelopeHeader *h = NULL;
    char *data = NULL, *content;
    size_t len;
    int rc;

    need(o, 6);
    if (read_file(o->pos[1], &data, &len))
        return EXIT_USAGE;
    if (o->base64) {
        content = b64_encode((unsigned char *)data, len);
        free(data);
        if (content == NULL)
            return EXIT_USAGE;
    } else {
        content = data;
    }
    memset(&env, 0, sizeof env);
    env.ns7__From = (char *)o->pos[2];
    env.ns7__To = (char *)o->pos[3];
    env.ns7__CertificateType = atoi(o->pos[4]);
    env.ns7__CertificateStatus = atoi(o->pos[5]);
    env.ns7__NPPOCertificateNumber = (char *)o->pos[6];
    env.ns7__Content = content;

    if (o->validate) {
        struct ns1__ValidateAndDeliverEnvelope req = { &env };
        struct ns1__ValidateAndDeliverEnvelopeResponse res;
        memset(&res, 0, sizeof res);
        rc = soap_call___ns1__ValidateAndDeliverEnvelope(soap, o->url, NULL, &req, &res);
        h = res.ValidateAndDeliverEnvelopeResult;
    } else {
        struct ns1__DeliverEnvelope req = { &env };
        struct ns1__DeliverEnvelopeResponse res;
        memset(&res, 0, sizeof res);
        rc = soap_call___ns1__DeliverEnvelope(soap, o->url, NULL, &req, &res);
        h = res.DeliverEnvelopeResult;
    }
    free(content);
    if (rc != SOAP_OK)
        return report_error(soap);
    if (h == NULL || h->ns7__hubDeliveryNumber == NULL || !*h->ns7__hubDeliveryNumber) {
        printf("error no hubDeliveryNumber in the answer\n");
        return EXIT_TRANSPORT;
    }
    fputs("tracking=", stdout);
    put_value(h->ns7__hubDeliveryNumber);
    putchar('\n');
    return 0;
}

static int op_headers(struct soap *soap, const struct opts *o)
{
    struct ns1__GetImportEnvelopeHeaders req;
    struct ns1__GetImportEnvelopeHeadersResponse res;

    need(o, 0);
    memset(&req, 0, sizeof req);
    memset(&res, 0, sizeof res);
    if (soap_call___ns1__GetImportEnvelopeHeaders(soap, o->url, NULL, &req, &res))
        return report_error(soap);
    print_headers(res.GetImportEnvelopeHeadersResult);
    return 0;
}

static int op_underdelivery(struct soap *soap, const struct opts *o)
{
    struct ns1__GetUnderDeliveryEnvelope req;
    struct ns1__GetUnderDeliveryEnvelopeResponse res;

    need(o, 0);
    memset(&req, 0, sizeof req);
    memset(&res, 0, sizeof res);
    if (soap_call___ns1__GetUnderDeliveryEnvelope(soap, o->url, NULL, &req, &res))
        return report_error(soap);
    print_headers(res.GetUnderDeliveryEnvelopeResult);
    return 0;
}

static int op_pull(struct soap *soap, const struct opts *o)
{
    struct ns1__PULLImportEnvelope req;
    struct ns1__PULLImportEnvelopeResponse res;
    struct ns7__ArrayOfEnvelope *a;
    int i, rc = 0;

    need(o, 0);
    memset(&req, 0, sizeof req);
    memset(&res, 0, sizeof res);
    if (soap_call___ns1__PULLImportEnvelope(soap, o->url, NULL, &req, &res))
        return report_error(soap);
    a = res.PULLImportEnvelopesResult;
    if (a == NULL)
        return 0;
    for (i = 0; i < a->__sizeEnvelope; i++) {
        const struct ns7__Envelope *e = &a->ns7__Envelope[i];
        print_envelope(e);
        if (o->out) {
            char path[4096];
            if (!safe_name(e->ns7__hubDeliveryNumber)) {
                fprintf(stderr, "hubclient: unusable tracking number\n");
                rc = EXIT_USAGE;
                continue;
            }
            snprintf(path, sizeof path, "%s/%s.content", o->out,
                     e->ns7__hubDeliveryNumber);
            if (write_file(path, e->ns7__Content))
                rc = EXIT_USAGE;
        }
    }
    return rc;
}

static int op_pullone(struct soap *soap, const struct opts *o)
{
    struct ns1__PULLSingleImportEnvelope req;
    struct ns1__PULLSingleImportEnvelopeResponse res;
    struct ns7__Envelope *e;

    need(o, 1);
    memset(&res, 0, sizeof res);
    req.hubTrackingNumber = (char *)o->pos[1];
    if (soap_call___ns1__PULLSingleImportEnvelope(soap, o->url, NULL, &req, &res))
        return report_error(soap);
    e = res.PULLSingleImportEnvelopeResult;
    if (e == NULL) {
        printf("error no envelope in the answer\n");
        return EXIT_TRANSPORT;
    }
    print_envelope(e);
    if (o->out && write_file(o->out, e->ns7__Content))
        return EXIT_USAGE;
    return 0;
}

static int op_ack(struct soap *soap, const struct opts *o)
{
    struct ns1__AcknowledgeEnvelopeReceipt req;
    struct ns1__AcknowledgeEnvelopeReceiptResponse res;

    need(o, 1);
    memset(&res, 0, sizeof res);
    req.hubTrackingNumber = (char *)o->pos[1];
    if (soap_call___ns1__AcknowledgeEnvelopeReceipt(soap, o->url, NULL, &req, &res))
        return report_error(soap);
    puts("acknowledged");
    return 0;
}

static int op_advack(struct soap *soap, const struct opts *o)
{
    struct ns1__AdvancedAcknowledgeEnvelopeReceipt req;
    struct ns1__AdvancedAcknowledgeEnvelopeReceiptResponse res;

    need(o, 2);
    memset(&res, 0, sizeof res);
    req.hubTrackingNumber = (char *)o->pos[1];
    req.warningMessage = (char *)o->pos[2];
    if (soap_call___ns1__AdvancedAcknowledgeEnvelopeReceipt(soap, o->url, NULL, &req, &res))
        return report_error(soap);
    fputs("acknowledged return=", stdout);
    put_value(res.return_);
    putchar('\n');
    return 0;
}

static int op_failack(struct soap *soap, const struct opts *o)
{
    struct ns1__AcknowledgeFailedEnvelopeReceipt req;
    struct ns1__AcknowledgeFailedEnvelopeReceiptResponse res;

    need(o, 2);
    memset(&res, 0, sizeof res);
    req.hubTrackingNumber = (char *)o->pos[1];
    req.message = (char *)o->pos[2];
    if (soap_call___ns1__AcknowledgeFailedEnvelopeReceipt(soap, o->url, NULL, &req, &res))
        return report_error(soap);
    fputs("acknowledged return=", stdout);
    put_value(res.return_);
    putchar('\n');
    return 0;
}

static int op_track(struct soap *soap, const struct opts *o)
{
    struct ns1__GetEnvelopeTrackingInfo req;
    struct ns1__GetEnvelopeTrackingInfoResponse res;
    struct ns7__EnvelopeHeader *h;

    need(o, 1);
    memset(&res, 0, sizeof res);
    req.hubTrackingNumber = (char *)o->pos[1];
    if (soap_call___ns1__GetEnvelopeTrackingInfo(soap, o->url, NULL, &req, &res))
        return report_error(soap);
    h = res.GetEnvelopeTrackingInfoResult;
    if (h == NULL) {
        printf("error no header in the answer\n");
        return EXIT_TRANSPORT;
    }
    fputs("tracking=", stdout);
    put_value(h->ns7__hubDeliveryNumber);
    fputs(" state=", stdout);
    put_value(h->ns7__HUBTrackingInfo);
    if (h->ns7__hubDeliveryErrorMessage) {
        fputs(" message=", stdout);
        put_value(h->ns7__hubDeliveryErrorMessage);
    }
    putchar('\n');
    return 0;
}

static int op_validate(struct soap *soap, const struct opts *o)
{
    struct ns1__ValidatePhytoXML req;
    struct ns1__ValidatePhytoXMLResponse res;
    char *data = NULL;
    size_t len;
    int i, severe = 0;

    need(o, 1);
    if (read_file(o->pos[1], &data, &len))
        return EXIT_USAGE;
    memset(&res, 0, sizeof res);
    req.ePhytoXML = data;
    if (soap_call___ns1__ValidatePhytoXML(soap, o->url, NULL, &req, &res)) {
        free(data);
        return report_error(soap);
    }
    free(data);
    for (i = 0; i < res.__sizeValidationResult; i++) {
        const struct ns1__validationResult *r = &res.ValidationResult[i];
        const char *lvl = r->level ? soap_ns1__validationLevel2s(soap, *r->level) : "";
        if (r->level && *r->level == ns1__validationLevel__SEVERE)
            severe++;
        fputs("result level=", stdout);
        put_value(lvl);
        fputs(" field=", stdout);
        put_value(r->field);
        fputs(" msg=", stdout);
        put_value(r->msg);
        putchar('\n');
    }
    printf("valid=%s\n", severe ? "no" : "yes");
    return 0;
}

static int op_nppos(struct soap *soap, const struct opts *o)
{
    struct ns1__GetActiveNppos req;
    struct ns1__GetActiveNpposResponse res;
    int i;

    need(o, 0);
    memset(&req, 0, sizeof req);
    memset(&res, 0, sizeof res);
    if (soap_call___ns1__GetActiveNppos(soap, o->url, NULL, &req, &res))
        return report_error(soap);
    if (res.GetActiveNpposResult == NULL)
        return 0;
    for (i = 0; i < res.GetActiveNpposResult->__sizeNppo; i++) {
        const struct ns7__Nppo *n = &res.GetActiveNpposResult->ns7__Nppo[i];
        fputs("nppo country=", stdout);
        put_value(n->ns7__Country);
        fputs(" send=", stdout);
        put_value(n->ns7__Send);
        fputs(" receive=", stdout);
        put_value(n->ns7__Receive);
        putchar('\n');
    }
    return 0;
}

/* Operations of the hub that the gateway does not implement: send the
 * request the generated code builds and report what comes back. */
#define RAW_EMPTY(NAME)                                                     \
    if (!strcmp(op, #NAME)) {                                               \
        struct ns1__##NAME req;                                             \
        struct ns1__##NAME##Response res;                                   \
        memset(&req, 0, sizeof req);                                        \
        memset(&res, 0, sizeof res);                                        \
        rc = soap_call___ns1__##NAME(soap, o->url, NULL, &req, &res);       \
        goto done;                                                          \
    }

static int op_raw(struct soap *soap, const struct opts *o)
{
    const char *op;
    int rc;

    need(o, 1);
    op = o->pos[1];
    RAW_EMPTY(GetTreatmentTypes)
    RAW_EMPTY(GetAdditionalDeclarations)
    RAW_EMPTY(GetProfile)
    RAW_EMPTY(GetAvailableChannels)
    RAW_EMPTY(GetPesticides)
    RAW_EMPTY(GetConditions)
    RAW_EMPTY(GetIntendedUses)
    RAW_EMPTY(GetMeanOfTransports)
    RAW_EMPTY(GetPackageTypes)
    RAW_EMPTY(GetProductDescriptions)
    RAW_EMPTY(GetStatements)
    RAW_EMPTY(GetUnitMeasures)
    if (!strcmp(op, "DeliverPhytoEnvelope")) {
        struct ns7__ePhytoEnvelope env;
        struct ns1__DeliverPhytoEnvelope req = { &env };
        struct ns1__DeliverPhytoEnvelopeResponse res;
        memset(&env, 0, sizeof env);
        memset(&res, 0, sizeof res);
        env.ns7__From = "BO";
        env.ns7__To = "EC";
        env.ns7__CertificateType = 851;
        env.ns7__CertificateStatus = 70;
        env.ns7__NPPOCertificateNumber = "RAW-1";
        rc = soap_call___ns1__DeliverPhytoEnvelope(soap, o->url, NULL, &req, &res);
        goto done;
    }
    if (!strcmp(op, "SetTrackingInfoUpdate")) {
        struct ns7__EnvelopeHeader h;
        struct ns1__SetTrackingInfoUpdate req = { &h };
        struct ns1__SetTrackingInfoUpdateResponse res;
        memset(&h, 0, sizeof h);
        memset(&res, 0, sizeof res);
        h.ns7__hubDeliveryNumber = "0";
        rc = soap_call___ns1__SetTrackingInfoUpdate(soap, o->url, NULL, &req, &res);
        goto done;
    }
    fprintf(stderr, "hubclient: raw: unknown operation %s\n", op);
    return EXIT_USAGE;
done:
    if (rc != SOAP_OK)
        return report_error(soap);
    puts("ok");
    return 0;
}

int main(int argc, char **argv)
{
    struct opts o;
    struct soap *soap;
    const char *op;
    int rc;

    parse_args(argc, argv, &o);
    op = o.pos[0];
    /* A server that refuses us may close while we write: report, not die. */
    signal(SIGPIPE, SIG_IGN);

    soap_ssl_init();
    soap = soap_new1(SOAP_C_UTFSTRING);
    if (soap == NULL) {
        fprintf(stderr, "hubclient: out of memory\n");
        return EXIT_USAGE;
    }
    soap_set_namespaces(soap, namespaces);
    soap->connect_timeout = o.timeout;
    soap->send_timeout = o.timeout;
    soap->recv_timeout = o.timeout;
    soap->recv_maxlength = 0x7fffffff;

    rc = setup_tls(soap, &o);
    if (rc == -1) {
        rc = report_error(soap);
        goto out;
    } else if (rc) {
        rc = EXIT_USAGE;
        goto out;
    }

    if (!strcmp(op, "deliver"))
        rc = op_deliver(soap, &o);
    else if (!strcmp(op, "headers"))
        rc = op_headers(soap, &o);
    else if (!strcmp(op, "underdelivery"))
        rc = op_underdelivery(soap, &o);
    else if (!strcmp(op, "pull"))
        rc = op_pull(soap, &o);
    else if (!strcmp(op, "pullone"))
        rc = op_pullone(soap, &o);
    else if (!strcmp(op, "ack"))
        rc = op_ack(soap, &o);
    else if (!strcmp(op, "advack"))
        rc = op_advack(soap, &o);
    else if (!strcmp(op, "failack"))
        rc = op_failack(soap, &o);
    else if (!strcmp(op, "track"))
        rc = op_track(soap, &o);
    else if (!strcmp(op, "validate"))
        rc = op_validate(soap, &o);
    else if (!strcmp(op, "nppos"))
        rc = op_nppos(soap, &o);
    else if (!strcmp(op, "raw"))
        rc = op_raw(soap, &o);
    else {
        fprintf(stderr, "hubclient: unknown operation %s\n", op);
        rc = EXIT_USAGE;
    }
out:
    fflush(stdout);
    soap_destroy(soap);
    soap_end(soap);
    soap_free(soap);
    return rc;
}
