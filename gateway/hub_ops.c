/*
 * hub_ops.c - the DeliveryService operations (ePhyto Hub wire contract).
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * Each operation works for the partner of the client certificate
 * (r->partner) and goes to the store through one queue_* call that
 * carries that partner.  Memory for answers comes from the request's
 * gSOAP context and is freed when the request ends.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "soapH.h"
#include "push.h"
#include "route.h"
#include "server.h"

#define HEADERS_MAX 1000      /* headers listed per call */
#define NUMBER_MAX  (Q_NUMBER_MAX - 1)

static struct request *
req(struct soap *soap)
{
    return (struct request *)soap->user;
}

void
hub_fault_detail(struct soap *soap, const char *msg)
{
    struct SOAP_ENV__Detail *d;

    soap_fault(soap);
    d = soap_new_SOAP_ENV__Detail(soap, -1);
    if (soap->fault == NULL || d == NULL)
        return;
    d->ns__HubWebException = soap_new__ns__HubWebException(soap, -1);
    if (d->ns__HubWebException != NULL)
        d->ns__HubWebException->message = soap_strdup(soap, msg);
    soap->fault->detail = d;
}

int
hub_fault(struct soap *soap, int client, const char *fmt, ...)
{
    struct request *r = req(soap);
    char msg[1024];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (r != NULL) {
        r->outcome = client ? "client-fault" : "server-fault";
        snprintf(r->note, sizeof(r->note), "%.*s", (int)sizeof(r->note) - 1, msg);
    }
    if (soap->version == 0)
        soap->version = 1;          /* not parsed as SOAP: answer in 1.1 */
    if (client)
        soap_sender_fault(soap, msg, NULL);
    else
        soap_receiver_fault(soap, msg, NULL);
    hub_fault_detail(soap, msg);
    return SOAP_FAULT;
}

/* The store failed: the caller may try again later (Server fault). */
static int
store_fault(struct soap *soap, const char *what, const char *err)
{
    struct request *r = req(soap);

    if (queue_err_transient(r->q))
        return hub_fault(soap, 0, "%s: %s", what, err);  /* err says
                                                   "try again later" */
    return hub_fault(soap, 0, "%s: internal store error; try again later",
                     what);
}

static const char *
tracking_word(int state)
{
    switch (state) {
    case Q_DELIVERED:
        return "Delivered";
    case Q_DELIVERED_WARNINGS:
        return "DeliveredWithWarnings";
    case Q_NOT_READABLE:
        return "DeliveredNotReadable";
    case Q_FAILED:
    case Q_DEAD:
        return "FailedDelivery";
    default:
        return "PendingDelivery";
    }
}

static int
need_role(struct soap *soap, unsigned role, const char *name)
{
    struct request *r = req(soap);

    if (r->partner->roles & role)
        return 0;
    return hub_fault(soap, 1, "partner %s may not call %s (no %s role)",
                     r->partner->id, r->op, name);
}

/* A tracking number as handed in by a client: printable, bounded. */
static int
check_tracking(struct soap *soap, const char *t)
{
    struct request *r = req(soap);
    size_t i, n;

    if (t == NULL || *t == '\0')
        return hub_fault(soap, 1, "hubTrackingNumber: missing");
    n = strlen(t);
    if (n >= Q_TRACKING_MAX)
        return hub_fault(soap, 1, "hubTrackingNumber: longer than %d "
                         "characters", Q_TRACKING_MAX - 1);
    for (i = 0; i < n; i++)
        if (t[i] < 0x21 || t[i] > 0x7e)
            return hub_fault(soap, 1, "hubTrackingNumber: character %zu "
                             "is not printable ASCII", i + 1);
    snprintf(r->tracking, sizeof(r->tracking), "%s", t);
    return SOAP_OK;
}

static void
fill_header(struct soap *soap, struct hub__EnvelopeHeader *h,
            const struct q_envelope *e)
{
    memset(h, 0, sizeof(*h));
    h->From = soap_strdup(soap, e->from);
    h->To = soap_strdup(soap, e->to);
    h->CertificateType = e->type;
    h->CertificateStatus = e->status;
    h->NPPOCertificateNumber = soap_strdup(soap, e->number);
    h->hubDeliveryNumber = soap_strdup(soap, e->tracking);
    h->HUBTrackingInfo = (char *)tracking_word(e->state);
    if (e->last_error != NULL && *e->last_error != '\0')
        h->hubDeliveryErrorMessage = soap_strdup(soap, e->last_error);
}

/* Content goes back as text when that keeps it byte-exact, else base64. */
static char *
content_out(struct soap *soap, const unsigned char *b, size_t n)
{
    char *s;

    if (sps_is_plain_utf8(b, n)) {
        s = soap_malloc(soap, n + 1);
        if (s != NULL) {
            memcpy(s, b, n);
            s[n] = '\0';
        }
        return s;
    }
    return soap_s2base64(soap, b, NULL, (int)n);
}

static void
fill_envelope(struct soap *soap, struct hub__Envelope *v,
              const struct q_envelope *e)
{
    struct hub__EnvelopeHeader h;

    fill_header(soap, &h, e);
    memset(v, 0, sizeof(*v));
    v->From = h.From;
    v->To = h.To;
    v->CertificateType = h.CertificateType;
    v->CertificateStatus = h.CertificateStatus;
    v->NPPOCertificateNumber = h.NPPOCertificateNumber;
    v->hubDeliveryNumber = h.hubDeliveryNumber;
    v->HUBTrackingInfo = h.HUBTrackingInfo;
    v->hubDeliveryErrorMessage = h.hubDeliveryErrorMessage;
    if (e->content != NULL)
        v->Content = content_out(soap, e->content, e->content_len);
}

/* ---- hand-in ------------------------------------------------------------ */

/* Format the first severe issue (and how many more) for a fault. */
static int
validation_fault(struct soap *soap, const char *what,
                 const struct sps_result *res)
{
    const struct sps_issue *is = NULL;
    size_t i;

    for (i = 0; i < res->nissues; i++)
        if (res->issues[i].level == SPS_SEVERE) {
            is = &res->issues[i];
            break;
        }
    if (is == NULL)
        return hub_fault(soap, 1, "%s: Content is not valid", what);
    if (is->line > 0)
        return hub_fault(soap, 1, "%s: Content line %d: %s%s%s%s", what,
                         is->line, is->field, *is->field ? ": " : "",
                         is->msg, res->nsevere > 1 ? " (and more errors)" : "");
    return hub_fault(soap, 1, "%s: %s%s%s%s", what, is->field,
                     *is->field ? ": " : "", is->msg,
                     res->nsevere > 1 ? " (and more errors)" : "");
}

/* Decode field's text (XML text or base64) and validate it: on SOAP_OK
 * *doc (malloc'd) and *res (calloc'd) hold the document and the result,
 * for the caller to free; otherwise a Fault is set. */
static int
decode_validate(struct soap *soap, const char *field, const char *text,
                unsigned char **doc, size_t *doclen, struct sps_result **res)
{
    const struct config *cfg = req(soap)->gw->cfg;
    struct sps_limits lim;
    int is_text = 0;
    char err[512];

    *doc = NULL;
    *doclen = 0;
    *res = NULL;
    if (text == NULL)
        return hub_fault(soap, 1, "%s: missing", field);
    if (sps_decode(text, strlen(text), doc, doclen, &is_text, err,
                   sizeof(err)) != 0)
        return hub_fault(soap, 1, "%s: %s", field, err);
    *res = calloc(1, sizeof(**res));
    if (*res == NULL)
        return hub_fault(soap, 0, "out of memory; try again later");
    lim.max_depth = cfg->xml_depth;
    lim.max_bytes = (size_t)cfg->max_request_bytes;
    sps_validate(req(soap)->gw->schema, &lim, *doc, *doclen, is_text, *res);
    return SOAP_OK;
}

static int
handin(struct soap *soap, const struct hub__Envelope *env,
       struct hub__EnvelopeHeader **result)
{
    struct request *r = req(soap);
    const struct config *cfg = r->gw->cfg;
    struct q_addressee to[ROUTE_MAX_ADDRESSEES];
    struct sps_result *res = NULL;
    struct sps_header hdr;
    struct q_handin in;
    struct hub__EnvelopeHeader *h;
    unsigned char *doc = NULL;
    size_t doclen = 0, nto = 0;
    int dup = 0, rc;
    char err[512];

    if (env == NULL) {
        rc = hub_fault(soap, 1, "envelope: missing");
        goto out;
    }
    if (env->NPPOCertificateNumber == NULL || *env->NPPOCertificateNumber == '\0'
        || strlen(env->NPPOCertificateNumber) > NUMBER_MAX) {
        rc = hub_fault(soap, 1, "NPPOCertificateNumber: missing or longer "
                       "than %d characters", NUMBER_MAX);
        goto out;
    }
    if (route_handin(cfg, r->partner, env->From, env->To, to,
                     ROUTE_MAX_ADDRESSEES, &nto, err, sizeof(err)) != 0) {
        rc = hub_fault(soap, 1, "%s", err);
        goto out;
    }
    if (decode_validate(soap, "Content", env->Content, &doc, &doclen,
                        &res) != SOAP_OK) {
        rc = SOAP_FAULT;
        goto out;
    }
    if (res->nsevere > 0) {
        rc = validation_fault(soap, "Content", res);
        goto out;
    }
    hdr.from = env->From;
    hdr.to = env->To;
    hdr.type = env->CertificateType;
    hdr.status = env->CertificateStatus;
    hdr.number = env->NPPOCertificateNumber;
    if (sps_check_header(&hdr, res) > 0) {
        rc = validation_fault(soap, "header", res);
        goto out;
    }
    memset(&in, 0, sizeof(in));
    in.from = env->From;
    in.to = env->To;
    in.type = env->CertificateType;
    in.status = env->CertificateStatus;
    in.number = env->NPPOCertificateNumber;
    in.sender = r->partner->id;
    in.content = doc;
    in.content_len = doclen;
    in.to_partners = to;
    in.nto = nto;
    if (queue_handin(r->q, &in, r->tracking, &dup, err, sizeof(err)) != Q_OK) {
        rc = store_fault(soap, "hand-in", err);
        goto out;
    }
    if (dup)
        snprintf(r->note, sizeof(r->note), "duplicate");
    else
        push_kick(r->gw->push);     /* mail deliveries may be due now */
    h = soap_new_hub__EnvelopeHeader(soap, -1);
    if (h == NULL) {
        rc = hub_fault(soap, 0, "out of memory; try again later");
        goto out;
    }
    h->From = env->From;
    h->To = env->To;
    h->CertificateType = env->CertificateType;
    h->CertificateStatus = env->CertificateStatus;
    h->NPPOCertificateNumber = env->NPPOCertificateNumber;
    h->hubDeliveryNumber = soap_strdup(soap, r->tracking);
    h->HUBTrackingInfo = "PendingDelivery";
    *result = h;
    rc = SOAP_OK;
out:
    free(res);
    free(doc);
    return rc;
}

int
__ns__DeliverEnvelope(struct soap *soap, struct _ns__DeliverEnvelope *in,
                      struct _ns__DeliverEnvelopeResponse *out)
{
    req(soap)->op = "DeliverEnvelope";
    return handin(soap, in->env, &out->DeliverEnvelopeResult);
}

int
__ns__ValidateAndDeliverEnvelope(struct soap *soap,
                                 struct _ns__ValidateAndDeliverEnvelope *in,
                                 struct _ns__ValidateAndDeliverEnvelopeResponse *out)
{
    req(soap)->op = "ValidateAndDeliverEnvelope";
    return handin(soap, in->envelope, &out->ValidateAndDeliverEnvelopeResult);
}

/* ---- what is waiting for the caller -------------------------------------- */

struct collect {
    struct soap *soap;
    int n, max;
    size_t bytes, budget;         /* content so far, and its limit (0: none) */
    struct hub__EnvelopeHeader *headers;
    struct hub__Envelope *envelopes;
};

static int
collect_cb(void *arg, const struct q_envelope *e)
{
    struct collect *c = arg;

    if (c->n >= c->max)
        return 1;
    /* One answer carries at most max_request_bytes of content (at least
     * one envelope): the rest waits for the next pull. */
    if (c->budget > 0 && c->n > 0 && c->bytes + e->content_len > c->budget)
        return 1;
    c->bytes += e->content_len;
    if (c->headers != NULL)
        fill_header(c->soap, &c->headers[c->n], e);
    else
        fill_envelope(c->soap, &c->envelopes[c->n], e);
    c->n++;
    return 0;
}

static int
list_headers(struct soap *soap, struct hub__ArrayOfEnvelopeHeader **result)
{
    struct request *r = req(soap);
    struct collect c;
    char err[512];

    if (need_role(soap, ROLE_PULL, "pull") != SOAP_OK)
        return SOAP_FAULT;
    memset(&c, 0, sizeof(c));
    c.soap = soap;
    c.max = HEADERS_MAX;
    c.headers = soap_malloc(soap, sizeof(*c.headers) * HEADERS_MAX);
    *result = soap_new_hub__ArrayOfEnvelopeHeader(soap, -1);
    if (c.headers == NULL || *result == NULL)
        return hub_fault(soap, 0, "out of memory; try again later");
    if (queue_headers(r->q, r->partner->id, c.max, collect_cb, &c, err,
                      sizeof(err)) != Q_OK)
        return store_fault(soap, r->op, err);
    (*result)->__sizeEnvelopeHeader = c.n;
    (*result)->EnvelopeHeader = c.n > 0 ? c.headers : NULL;
    r->count = c.n;
    return SOAP_OK;
}

int
__ns__GetImportEnvelopeHeaders(struct soap *soap,
                               struct _ns__GetImportEnvelopeHeaders *in,
                               struct _ns__GetImportEnvelopeHeadersResponse *out)
{
    struct request *r = req(soap);

    r->op = "GetImportEnvelopeHeaders";
    if (in->countryCode != NULL && *in->countryCode != '\0' &&
        strcmp(in->countryCode, r->partner->country) != 0)
        return hub_fault(soap, 1, "countryCode: %.8s is not the caller's "
                         "country %s", in->countryCode, r->partner->country);
    return list_headers(soap, &out->GetImportEnvelopeHeadersResult);
}

int
__ns__GetUnderDeliveryEnvelope(struct soap *soap,
                               struct _ns__GetUnderDeliveryEnvelope *in,
                               struct _ns__GetUnderDeliveryEnvelopeResponse *out)
{
    (void)in;
    req(soap)->op = "GetUnderDeliveryEnvelope";
    return list_headers(soap, &out->GetUnderDeliveryEnvelopeResult);
}

int
__ns__PULLImportEnvelope(struct soap *soap, struct _ns__PULLImportEnvelope *in,
                         struct _ns__PULLImportEnvelopeResponse *out)
{
    struct request *r = req(soap);
    struct hub__ArrayOfEnvelope *a;
    struct collect c;
    char err[512];

    (void)in;
    r->op = "PULLImportEnvelope";
    if (need_role(soap, ROLE_PULL, "pull") != SOAP_OK)
        return SOAP_FAULT;
    memset(&c, 0, sizeof(c));
    c.soap = soap;
    c.max = r->gw->cfg->max_pull;
    c.budget = (size_t)r->gw->cfg->max_request_bytes;
    c.envelopes = soap_malloc(soap, sizeof(*c.envelopes) * (size_t)c.max);
    a = soap_new_hub__ArrayOfEnvelope(soap, -1);
    if (c.envelopes == NULL || a == NULL)
        return hub_fault(soap, 0, "out of memory; try again later");
    if (queue_pull(r->q, r->partner->id, c.max, collect_cb, &c, err,
                   sizeof(err)) != Q_OK)
        return store_fault(soap, r->op, err);
    a->__sizeEnvelope = c.n;
    a->Envelope = c.n > 0 ? c.envelopes : NULL;
    out->PULLImportEnvelopesResult = a;
    r->count = c.n;
    return SOAP_OK;
}

int
__ns__PULLSingleImportEnvelope(struct soap *soap,
                               struct _ns__PULLSingleImportEnvelope *in,
                               struct _ns__PULLSingleImportEnvelopeResponse *out)
{
    struct request *r = req(soap);
    struct collect c;
    char err[512];
    int rc;

    r->op = "PULLSingleImportEnvelope";
    if (need_role(soap, ROLE_PULL, "pull") != SOAP_OK ||
        check_tracking(soap, in->hubTrackingNumber) != SOAP_OK)
        return SOAP_FAULT;
    memset(&c, 0, sizeof(c));
    c.soap = soap;
    c.max = 1;
    c.envelopes = soap_new_hub__Envelope(soap, -1);
    if (c.envelopes == NULL)
        return hub_fault(soap, 0, "out of memory; try again later");
    rc = queue_pull_one(r->q, r->partner->id, r->tracking, collect_cb, &c,
                        err, sizeof(err));
    if (rc == Q_NOTFOUND || (rc == Q_OK && c.n == 0))
        return hub_fault(soap, 1, "hubTrackingNumber: envelope %s not found",
                         r->tracking);
    if (rc != Q_OK)
        return store_fault(soap, r->op, err);
    out->PULLSingleImportEnvelopeResult = c.envelopes;
    r->count = 1;
    return SOAP_OK;
}

/* ---- acknowledgements ---------------------------------------------------- */

static int
ack(struct soap *soap, const char *tracking, int state, const char *message)
{
    struct request *r = req(soap);
    char err[512];
    int rc;

    if (need_role(soap, ROLE_PULL, "pull") != SOAP_OK ||
        check_tracking(soap, tracking) != SOAP_OK)
        return SOAP_FAULT;
    rc = queue_ack(r->q, r->partner->id, r->tracking, state, message, err,
                   sizeof(err));
    if (rc == Q_NOTFOUND)
        return hub_fault(soap, 1, "hubTrackingNumber: envelope %s not found",
                         r->tracking);
    if (rc != Q_OK)
        return store_fault(soap, r->op, err);
    return SOAP_OK;
}

int
__ns__AcknowledgeEnvelopeReceipt(struct soap *soap,
                                 struct _ns__AcknowledgeEnvelopeReceipt *in,
                                 struct _ns__AcknowledgeEnvelopeReceiptResponse *out)
{
    (void)out;
    req(soap)->op = "AcknowledgeEnvelopeReceipt";
    return ack(soap, in->hubTrackingNumber, Q_DELIVERED, NULL);
}

int
__ns__AdvancedAcknowledgeEnvelopeReceipt(struct soap *soap,
        struct _ns__AdvancedAcknowledgeEnvelopeReceipt *in,
        struct _ns__AdvancedAcknowledgeEnvelopeReceiptResponse *out)
{
    req(soap)->op = "AdvancedAcknowledgeEnvelopeReceipt";
    if (ack(soap, in->hubTrackingNumber, Q_DELIVERED_WARNINGS,
            in->warningMessage) != SOAP_OK)
        return SOAP_FAULT;
    out->return_ = "DeliveredWithWarnings";
    return SOAP_OK;
}

int
__ns__AcknowledgeFailedEnvelopeReceipt(struct soap *soap,
        struct _ns__AcknowledgeFailedEnvelopeReceipt *in,
        struct _ns__AcknowledgeFailedEnvelopeReceiptResponse *out)
{
    req(soap)->op = "AcknowledgeFailedEnvelopeReceipt";
    if (ack(soap, in->hubTrackingNumber, Q_NOT_READABLE, in->message) != SOAP_OK)
        return SOAP_FAULT;
    out->return_ = "DeliveredNotReadable";
    return SOAP_OK;
}

/* ---- tracking ------------------------------------------------------------ */

static int
track_cb(void *arg, const struct q_envelope *e)
{
    struct collect *c = arg;

    fill_header(c->soap, c->headers, e);
    c->n = 1;
    return 1;
}

int
__ns__GetEnvelopeTrackingInfo(struct soap *soap,
                              struct _ns__GetEnvelopeTrackingInfo *in,
                              struct _ns__GetEnvelopeTrackingInfoResponse *out)
{
    struct request *r = req(soap);
    struct collect c;
    char err[512];
    int rc;

    r->op = "GetEnvelopeTrackingInfo";
    if (check_tracking(soap, in->hubTrackingNumber) != SOAP_OK)
        return SOAP_FAULT;
    memset(&c, 0, sizeof(c));
    c.soap = soap;
    c.headers = soap_new_hub__EnvelopeHeader(soap, -1);
    if (c.headers == NULL)
        return hub_fault(soap, 0, "out of memory; try again later");
    rc = queue_track(r->q, r->partner->id, r->tracking, track_cb, &c, err,
                     sizeof(err));
    if (rc != Q_OK && rc != Q_NOTFOUND)
        return store_fault(soap, r->op, err);
    if (rc == Q_NOTFOUND || c.n == 0) {
        /* Not there, or not the caller's: the same answer. */
        memset(c.headers, 0, sizeof(*c.headers));
        c.headers->From = "";
        c.headers->To = "";
        c.headers->NPPOCertificateNumber = "";
        c.headers->hubDeliveryNumber = soap_strdup(soap, r->tracking);
        c.headers->HUBTrackingInfo = "EnvelopeNotExists";
    }
    out->GetEnvelopeTrackingInfoResult = c.headers;
    return SOAP_OK;
}

/* ---- validation without storing ------------------------------------------ */

int
__ns__ValidatePhytoXML(struct soap *soap, struct _ns__ValidatePhytoXML *in,
                       struct _ns__ValidatePhytoXMLResponse *out)
{
    struct request *r = req(soap);
    static enum ns__validationArea area_schema = ns__validationArea__Schema;
    static enum ns__validationLevel levels[3] = {
        ns__validationLevel__SEVERE, ns__validationLevel__WARNING,
        ns__validationLevel__INFO,
    };
    struct sps_result *res = NULL;
    unsigned char *doc = NULL;
    size_t doclen = 0, i;
    int rc;

    r->op = "ValidatePhytoXML";
    if (decode_validate(soap, "ePhytoXML", in->ePhytoXML, &doc, &doclen,
                        &res) != SOAP_OK) {
        rc = SOAP_FAULT;
        goto out;
    }
    out->__sizeValidationResult = (int)res->nissues;
    out->ValidationResult = res->nissues > 0 ?
        soap_malloc(soap, sizeof(*out->ValidationResult) * res->nissues) : NULL;
    for (i = 0; i < res->nissues && out->ValidationResult != NULL; i++) {
        struct ns__validationResult *v = &out->ValidationResult[i];
        const struct sps_issue *is = &res->issues[i];
        char m[512];

        if (is->line > 0)
            snprintf(m, sizeof(m), "line %d: %s", is->line, is->msg);
        else
            snprintf(m, sizeof(m), "%s", is->msg);
        v->area = &area_schema;
        v->field = soap_strdup(soap, is->field);
        v->level = &levels[is->level >= 0 && is->level <= 2 ? is->level : 0];
        v->msg = soap_strdup(soap, m);
    }
    r->count = (int)res->nsevere;
    snprintf(r->note, sizeof(r->note), "%s", res->nsevere ? "invalid" : "valid");
    rc = SOAP_OK;
out:
    free(res);
    free(doc);
    return rc;
}

/* ---- partners ------------------------------------------------------------ */

int
__ns__GetActiveNppos(struct soap *soap, struct _ns__GetActiveNppos *in,
                     struct _ns__GetActiveNpposResponse *out)
{
    struct request *r = req(soap);
    const struct config *cfg = r->gw->cfg;
    struct hub__ArrayOfNppo *a;
    size_t i, j;
    int n = 0;

    (void)in;
    r->op = "GetActiveNppos";
    a = soap_new_hub__ArrayOfNppo(soap, -1);
    if (a == NULL)
        return hub_fault(soap, 0, "out of memory; try again later");
    a->Nppo = cfg->npartners > 0 ?
        soap_malloc(soap, sizeof(*a->Nppo) * cfg->npartners) : NULL;
    for (i = 0; i < cfg->npartners && a->Nppo != NULL; i++) {
        const struct partner *p = &cfg->partners[i];
        unsigned roles = 0;

        for (j = 0; j < i; j++)
            if (strcmp(cfg->partners[j].country, p->country) == 0)
                break;
        if (j < i)
            continue;               /* country already listed */
        for (j = i; j < cfg->npartners; j++)
            if (strcmp(cfg->partners[j].country, p->country) == 0)
                roles |= cfg->partners[j].roles;
        a->Nppo[n].Country = (char *)p->country;
        a->Nppo[n].Send = (roles & ROLE_SUBMIT) ? "true" : "false";
        a->Nppo[n].Receive = (roles & ROLE_PULL) ? "true" : "false";
        n++;
    }
    a->__sizeNppo = n;
    out->GetActiveNpposResult = a;
    r->count = n;
    return SOAP_OK;
}
