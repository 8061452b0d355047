/*
 * sps.c - decode, parse and validate the SPSCertificate carried in an
 * envelope, and compare it with the envelope header.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * Security model (libxml2 2.9):
 *  - one process-wide external entity loader (sps_init) that only serves
 *    local files below the schema directory, and only to the thread that
 *    is compiling the schema (sps_schema_load); everything else is refused;
 *  - documents are parsed with XML_PARSE_NONET, no entity substitution, no
 *    DTD loading; a DOCTYPE stops the parser at once from the SAX
 *    internalSubset callback, before any entity is declared or expanded;
 *  - all error reporting is per context (parser SAX serror, schema
 *    validation context), so several threads may validate at once against
 *    the one shared compiled schema.
 */
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libxml/SAX2.h>
#include <libxml/globals.h>
#include <libxml/parser.h>
#include <libxml/parserInternals.h>
#include <libxml/tree.h>
#include <libxml/uri.h>
#include <libxml/xmlerror.h>
#include <libxml/xmlschemas.h>
#include <libxml/xmlschemastypes.h>

#include <openssl/evp.h>

#include "sps.h"

#define NS_RSM "urn:un:unece:uncefact:data:standard:SPSCertificate:17"
#define NS_RAM "urn:un:unece:uncefact:data:standard:" \
               "ReusableAggregateBusinessInformationEntity:21"
#define MAIN_XSD "data/standard/SPSCertificate_17p0.xsd"
#define ECHO_MAX 64

#define MSG_EMPTY "Content is empty"
#define MSG_NOT_XML "Content is neither XML text nor base64-encoded XML"

struct sps_schema {
    xmlSchemaPtr xsd;
    char dir[PATH_MAX];
};

/* Set only while this thread compiles the schema: the one directory the
 * entity loader may serve files from.  NULL everywhere else. */
static _Thread_local const char *tl_root;
/* Last resource the loader refused in this thread ("" if none). */
static _Thread_local char tl_refused[300];

/* Per-parse state, reached through ctxt->_private. */
struct parse_state {
    struct sps_result *res;
    int max_depth;
    int depth;
    int refused;        /* we stopped the parser ourselves */
};

struct load_state {
    char first_err[512];
    char first_warn[512];
};

/* ------------------------------------------------------------------ */
/* small helpers                                                        */
/* ------------------------------------------------------------------ */

static int
is_ws(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* Copy at most ECHO_MAX bytes of s into buf, marking a cut with "...". */
static const char *
echo(const char *s, char *buf, size_t len)
{
    size_t n = s != NULL ? strlen(s) : 0;

    if (n > ECHO_MAX)
        snprintf(buf, len, "%.*s...", ECHO_MAX, s);
    else
        snprintf(buf, len, "%s", s != NULL ? s : "");
    return buf;
}

/* Find [*b, *e) of s without leading and trailing white space. */
static void
trim_span(const char *s, const char **b, const char **e)
{
    const char *p = s != NULL ? s : "";
    const char *q = p + strlen(p);

    while (p < q && is_ws((unsigned char)*p))
        p++;
    while (q > p && is_ws((unsigned char)q[-1]))
        q--;
    *b = p;
    *e = q;
}

static const struct {
    const char *from, *to;
} ns_short[] = {
    { "{" NS_RSM "}", "rsm:" },
    { "{" NS_RAM "}", "ram:" },
    { "{urn:un:unece:uncefact:data:standard:UnqualifiedDataType:21}", "udt:" },
    { "{urn:un:unece:uncefact:data:Standard:QualifiedDataType:21}", "qdt:" },
    { "{http://www.w3.org/2000/09/xmldsig#}", "ds:" },
};

/* libxml2 message -> one line, known namespaces shortened to prefixes,
 * trailing white space dropped. */
static void
clean_msg(const char *in, char *out, size_t outlen)
{
    size_t o = 0, i, n;
    const char *p = in != NULL ? in : "";

    while (*p != '\0' && o + 1 < outlen) {
        int done = 0;

        if (*p == '{') {
            for (i = 0; i < sizeof ns_short / sizeof ns_short[0]; i++) {
                n = strlen(ns_short[i].from);
                if (strncmp(p, ns_short[i].from, n) == 0) {
                    size_t t = strlen(ns_short[i].to);

                    if (o + t + 1 > outlen)
                        t = outlen - o - 1;
                    memcpy(out + o, ns_short[i].to, t);
                    o += t;
                    p += n;
                    done = 1;
                    break;
                }
            }
        }
        if (!done) {
            char c = *p++;

            out[o++] = (c == '\n' || c == '\r' || c == '\t') ? ' ' : c;
        }
    }
    while (o > 0 && out[o - 1] == ' ')
        o--;
    if (outlen > 0)
        out[o] = '\0';
}

/* "SPSExchangedDocument/ID"-style path of an element (or attribute),
 * relative to the root element; the root itself is named by its own name.
 * Too long a path keeps its tail behind ".../". */
static void
node_path(const xmlNode *node, char *buf, size_t len)
{
    const xmlNode *chain[64];
    char full[1024];
    const xmlNode *cur;
    size_t n = 0, o = 0, i;
    int cut = 0;

    if (len == 0)
        goto out;
    buf[0] = '\0';
    for (cur = node; cur != NULL && (cur->type == XML_ELEMENT_NODE ||
                                     cur->type == XML_ATTRIBUTE_NODE);
         cur = cur->parent) {
        if (n == sizeof chain / sizeof chain[0]) {
            cut = 1;
            break;
        }
        chain[n++] = cur;
    }
    /* Drop the root element unless it is all there is. */
    if (!cut && n > 1)
        n--;
    full[0] = '\0';
    for (i = n; i > 0 && o + 1 < sizeof full; i--) {
        const xmlNode *x = chain[i - 1];
        int w = snprintf(full + o, sizeof full - o, "%s%s%s",
                         o > 0 ? "/" : "",
                         x->type == XML_ATTRIBUTE_NODE ? "@" : "",
                         x->name != NULL ? (const char *)x->name : "");

        if (w < 0)
            break;
        o += (size_t)w;
        if (o >= sizeof full)
            o = sizeof full - 1;
    }
    if (!cut && o < len) {
        memcpy(buf, full, o + 1);
    } else {
        /* Keep the tail, starting at a component boundary. */
        const char *tail = full + o;
        size_t room = len > 5 ? len - 5 : 0;

        while (tail > full && (size_t)(full + o - tail) < room)
            tail--;
        while (*tail != '\0' && *tail != '/' && tail != full)
            tail++;
        if (*tail == '/')
            tail++;
        snprintf(buf, len, ".../%s", tail);
    }
out:
    return;
}

static void
facts_init(struct sps_facts *f)
{
    memset(f, 0, sizeof *f);
    f->type = -1;
    f->status = -1;
}

/* ------------------------------------------------------------------ */
/* issues                                                               */
/* ------------------------------------------------------------------ */

static void
add_issue_v(struct sps_result *res, int level, int line, const char *field,
            const char *fmt, va_list ap)
{
    struct sps_issue *it;
    size_t n;

    if (res == NULL)
        goto out;
    if (level == SPS_SEVERE)
        res->nsevere++;
    if (res->nissues >= SPS_MAX_ISSUES)
        goto out;
    it = &res->issues[res->nissues++];
    it->level = level;
    it->line = line > 0 ? line : 0;
    snprintf(it->field, sizeof it->field, "%s", field != NULL ? field : "");
    vsnprintf(it->msg, sizeof it->msg, fmt, ap);
    n = strlen(it->msg);
    while (n > 0 && is_ws((unsigned char)it->msg[n - 1]))
        it->msg[--n] = '\0';
out:
    return;
}

void
sps_add_issue(struct sps_result *res, int level, int line,
              const char *field, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    add_issue_v(res, level, line, field, fmt, ap);
    va_end(ap);
}

/* ------------------------------------------------------------------ */
/* entity loader and init                                               */
/* ------------------------------------------------------------------ */

static xmlParserInputPtr
sps_entity_loader(const char *url, const char *id, xmlParserCtxtPtr ctxt)
{
    xmlParserInputPtr in = NULL;
    char *unesc = NULL;
    const char *path = url;
    char real[PATH_MAX];
    size_t rl;

    (void)id;
    if (url == NULL) {
        snprintf(tl_refused, sizeof tl_refused,
                 "external resource without a URL refused");
        goto out;
    }
    if (tl_root == NULL) {
        snprintf(tl_refused, sizeof tl_refused,
                 "external resource '%.64s' refused: nothing is loaded "
                 "from outside while checking a document", url);
        goto out;
    }
    if (strncmp(url, "file://", 7) == 0) {
        unesc = xmlURIUnescapeString(url + 7, 0, NULL);
        path = unesc;
        if (path != NULL && strncmp(path, "localhost/", 10) == 0)
            path += 9;
    } else if (strstr(url, ":/") != NULL) {
        path = NULL;          /* http://, ftp://, ... */
    }
    if (path == NULL || realpath(path, real) == NULL) {
        snprintf(tl_refused, sizeof tl_refused,
                 "external resource '%.64s' refused: not a local file", url);
        goto out;
    }
    rl = strlen(tl_root);
    if (strncmp(real, tl_root, rl) != 0 || real[rl] != '/') {
        snprintf(tl_refused, sizeof tl_refused,
                 "external resource '%.64s' refused: outside the schema "
                 "directory", url);
        goto out;
    }
    in = xmlNewInputFromFile(ctxt, real);
out:
    xmlFree(unesc);
    return in;
}

void
sps_init(void)
{
    xmlInitParser();
    xmlSchemaInitTypes();
    xmlSetExternalEntityLoader(sps_entity_loader);
}

/* ------------------------------------------------------------------ */
/* schema                                                               */
/* ------------------------------------------------------------------ */

static void
load_serror(void *data, xmlErrorPtr e)
{
    struct load_state *ls = data;
    char msg[400];
    char *dst;

    if (ls == NULL || e == NULL)
        goto out;
    if (e->level >= XML_ERR_ERROR)
        dst = ls->first_err;
    else
        dst = ls->first_warn;
    if (dst[0] != '\0')
        goto out;
    clean_msg(e->message, msg, sizeof msg);
    snprintf(dst, sizeof ls->first_err, "%s:%d: %s",
             e->file != NULL ? e->file : "(schema)", e->line, msg);
out:
    return;
}

int
sps_schema_load(const char *dir, struct sps_schema **out,
                char *err, size_t errlen)
{
    struct sps_schema *s = NULL;
    struct load_state *ls = NULL;
    xmlSchemaParserCtxtPtr pctxt = NULL;
    xmlStructuredErrorFunc old_fn = NULL;
    void *old_ctx = NULL;
    int saved = 0, rc = -1;
    char path[PATH_MAX + 64];

    if (errlen > 0)
        err[0] = '\0';
    if (out == NULL || dir == NULL) {
        snprintf(err, errlen, "no schema directory given");
        goto out;
    }
    *out = NULL;
    if (xmlGetExternalEntityLoader() != sps_entity_loader) {
        snprintf(err, errlen, "sps_init() has not been called");
        goto out;
    }
    s = calloc(1, sizeof *s);
    ls = calloc(1, sizeof *ls);
    if (s == NULL || ls == NULL) {
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    if (realpath(dir, s->dir) == NULL) {
        snprintf(err, errlen, "schema directory %s: %s", dir,
                 strerror(errno));
        goto out;
    }
    snprintf(path, sizeof path, "%s/%s", s->dir, MAIN_XSD);
    if (access(path, R_OK) != 0) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        goto out;
    }

    /* Errors of the XML parser that reads each schema file go to this
     * thread's structured handler; take it over while compiling. */
    old_fn = xmlStructuredError;
    old_ctx = xmlStructuredErrorContext;
    saved = 1;
    xmlSetStructuredErrorFunc(ls, load_serror);
    tl_root = s->dir;
    tl_refused[0] = '\0';

    pctxt = xmlSchemaNewParserCtxt(path);
    if (pctxt == NULL) {
        snprintf(err, errlen, "%s: cannot create schema parser", path);
        goto out;
    }
    xmlSchemaSetParserStructuredErrors(pctxt, load_serror, ls);
    s->xsd = xmlSchemaParse(pctxt);
    tl_root = NULL;
    if (tl_refused[0] != '\0') {
        snprintf(err, errlen, "%s: %s", path, tl_refused);
        goto out;
    }
    if (s->xsd == NULL) {
        if (ls->first_err[0] != '\0')
            snprintf(err, errlen, "%s", ls->first_err);
        else if (ls->first_warn[0] != '\0')
            snprintf(err, errlen, "%s", ls->first_warn);
        else
            snprintf(err, errlen, "%s: schema does not compile", path);
        goto out;
    }
    *out = s;
    s = NULL;
    rc = 0;
out:
    tl_root = NULL;
    if (saved)
        xmlSetStructuredErrorFunc(old_ctx, old_fn);
    xmlSchemaFreeParserCtxt(pctxt);
    sps_schema_free(s);
    free(ls);
    return rc;
}

void
sps_schema_free(struct sps_schema *s)
{
    if (s != NULL) {
        if (s->xsd != NULL)
            xmlSchemaFree(s->xsd);
        free(s);
    }
}

/* ------------------------------------------------------------------ */
/* decoding                                                             */
/* ------------------------------------------------------------------ */

static int
b64_char(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
           (c >= '0' && c <= '9') || c == '+' || c == '/';
}

/* Does a decoded document start the way XML does? */
static int
looks_like_xml(const unsigned char *b, size_t n)
{
    size_t i = 0;
    int ok = 0;

    if (n >= 3 && b[0] == 0xEF && b[1] == 0xBB && b[2] == 0xBF)
        ok = 1;
    else if (n >= 2 && ((b[0] == 0xFF && b[1] == 0xFE) ||
                        (b[0] == 0xFE && b[1] == 0xFF)))
        ok = 1;
    else if (n >= 2 && ((b[0] == '<' && b[1] == 0) ||
                        (b[0] == 0 && b[1] == '<')))
        ok = 1;
    else {
        while (i < n && is_ws(b[i]))
            i++;
        ok = i < n && b[i] == '<';
    }
    return ok;
}

int
sps_decode(const char *content, size_t len, unsigned char **doc,
           size_t *doclen, int *is_text, char *err, size_t errlen)
{
    const unsigned char *c = (const unsigned char *)content;
    unsigned char *clean = NULL, *out = NULL;
    size_t i, n = 0, pad = 0;
    int rc = -1, got;

    if (errlen > 0)
        err[0] = '\0';
    *doc = NULL;
    *doclen = 0;
    *is_text = 0;
    if (c == NULL)
        len = 0;
    i = 0;
    while (i < len && is_ws(c[i]))
        i++;
    if (i == len) {
        snprintf(err, errlen, MSG_EMPTY);
        goto out;
    }
    if (c[i] == '<' || (len - i >= 4 && c[i] == 0xEF && c[i + 1] == 0xBB &&
                        c[i + 2] == 0xBF && c[i + 3] == '<')) {
        /* XML text: kept byte for byte. */
        out = malloc(len + 1);
        if (out == NULL) {
            snprintf(err, errlen, "out of memory");
            goto out;
        }
        memcpy(out, c, len);
        out[len] = '\0';
        *doc = out;
        *doclen = len;
        *is_text = 1;
        out = NULL;
        rc = 0;
        goto out;
    }

    /* base64: alphabet, '=' padding at the end, white space anywhere. */
    clean = malloc(len - i + 1);
    if (clean == NULL) {
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    for (; i < len; i++) {
        if (is_ws(c[i]))
            continue;
        if (c[i] == '=') {
            pad++;
        } else if (!b64_char(c[i]) || pad > 0) {
            snprintf(err, errlen, MSG_NOT_XML);
            goto out;
        }
        clean[n++] = c[i];
    }
    if (pad > 2 || n % 4 != 0 || n > INT_MAX) {
        snprintf(err, errlen, MSG_NOT_XML);
        goto out;
    }
    out = malloc(n / 4 * 3 + 1);
    if (out == NULL) {
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    got = EVP_DecodeBlock(out, clean, (int)n);
    if (got < 0 || (size_t)got < pad) {
        snprintf(err, errlen, MSG_NOT_XML);
        goto out;
    }
    got -= (int)pad;
    if (got == 0) {
        snprintf(err, errlen, MSG_EMPTY);
        goto out;
    }
    if (!looks_like_xml(out, (size_t)got)) {
        snprintf(err, errlen, MSG_NOT_XML);
        goto out;
    }
    out[got] = '\0';
    *doc = out;
    *doclen = (size_t)got;
    *is_text = 0;
    out = NULL;
    rc = 0;
out:
    free(clean);
    free(out);
    return rc;
}

/* ------------------------------------------------------------------ */
/* parsing                                                              */
/* ------------------------------------------------------------------ */

static struct parse_state *
state_of(void *ctx)
{
    xmlParserCtxtPtr ctxt = ctx;

    return ctxt != NULL ? ctxt->_private : NULL;
}

/* Record our own refusal (first one only) and stop the parser. */
static void
refuse(xmlParserCtxtPtr ctxt, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
refuse(xmlParserCtxtPtr ctxt, const char *field, const char *fmt, ...)
{
    struct parse_state *st = state_of(ctxt);
    va_list ap;

    if (st != NULL && !st->refused) {
        st->refused = 1;
        va_start(ap, fmt);
        add_issue_v(st->res, SPS_SEVERE, xmlSAX2GetLineNumber(ctxt), field,
                    fmt, ap);
        va_end(ap);
    }
    xmlStopParser(ctxt);
}

static void
sax_internal_subset(void *ctx, const xmlChar *name, const xmlChar *eid,
                    const xmlChar *sid)
{
    (void)name;
    (void)eid;
    (void)sid;
    refuse(ctx, "DOCTYPE", "DOCTYPE not allowed: documents with a document "
           "type declaration (DTD, entity declarations) are refused");
}

static void
sax_external_subset(void *ctx, const xmlChar *name, const xmlChar *eid,
                    const xmlChar *sid)
{
    (void)name;
    (void)eid;
    (void)sid;
    refuse(ctx, "DOCTYPE", "DOCTYPE not allowed: external DTDs are refused");
}

static void
sax_entity_decl(void *ctx, const xmlChar *name, int type,
                const xmlChar *pid, const xmlChar *sid, xmlChar *content)
{
    (void)type;
    (void)pid;
    (void)sid;
    (void)content;
    refuse(ctx, "DOCTYPE", "DOCTYPE not allowed: entity declaration '%.64s' "
           "refused", name != NULL ? (const char *)name : "");
}

static void
sax_unparsed_entity_decl(void *ctx, const xmlChar *name, const xmlChar *pid,
                         const xmlChar *sid, const xmlChar *notation)
{
    (void)pid;
    (void)sid;
    (void)notation;
    refuse(ctx, "DOCTYPE", "DOCTYPE not allowed: entity declaration '%.64s' "
           "refused", name != NULL ? (const char *)name : "");
}

static xmlEntityPtr
sax_get_entity(void *ctx, const xmlChar *name)
{
    refuse(ctx, "", "entity reference '&%.64s;' not allowed",
           name != NULL ? (const char *)name : "");
    return NULL;
}

static xmlEntityPtr
sax_get_parameter_entity(void *ctx, const xmlChar *name)
{
    refuse(ctx, "DOCTYPE", "parameter entity '%%%.64s;' not allowed",
           name != NULL ? (const char *)name : "");
    return NULL;
}

static void
sax_reference(void *ctx, const xmlChar *name)
{
    refuse(ctx, "", "entity reference '&%.64s;' not allowed",
           name != NULL ? (const char *)name : "");
}

static void
sax_start_element(void *ctx, const xmlChar *localname, const xmlChar *prefix,
                  const xmlChar *uri, int nb_namespaces,
                  const xmlChar **namespaces, int nb_attributes,
                  int nb_defaulted, const xmlChar **attributes)
{
    struct parse_state *st = state_of(ctx);

    if (st != NULL && ++st->depth > st->max_depth && st->max_depth > 0)
        refuse(ctx, localname != NULL ? (const char *)localname : "",
               "nesting deeper than %d elements", st->max_depth);
    else
        xmlSAX2StartElementNs(ctx, localname, prefix, uri, nb_namespaces,
                              namespaces, nb_attributes, nb_defaulted,
                              attributes);
}

static void
sax_end_element(void *ctx, const xmlChar *localname, const xmlChar *prefix,
                const xmlChar *uri)
{
    struct parse_state *st = state_of(ctx);

    if (st != NULL && st->depth > 0)
        st->depth--;
    xmlSAX2EndElementNs(ctx, localname, prefix, uri);
}

static void
parse_serror(void *data, xmlErrorPtr e)
{
    xmlParserCtxtPtr ctxt = data;
    struct parse_state *st = state_of(ctxt);
    char field[96], msg[400];

    if (st == NULL || e == NULL || st->refused ||
        e->code == XML_ERR_USER_STOP)
        goto out;
    field[0] = '\0';
    if (ctxt->node != NULL)
        node_path(ctxt->node, field, sizeof field);
    clean_msg(e->message, msg, sizeof msg);
    sps_add_issue(st->res, e->level == XML_ERR_WARNING ? SPS_WARNING
                                                        : SPS_SEVERE,
                  e->line, field, "%s", msg);
out:
    return;
}

static void
valid_serror(void *data, xmlErrorPtr e)
{
    struct sps_result *res = data;
    char field[96], msg[400];
    int line;

    if (res == NULL || e == NULL)
        goto out;
    field[0] = '\0';
    line = e->line;
    if (e->node != NULL) {
        node_path(e->node, field, sizeof field);
        if (line <= 0)
            line = (int)xmlGetLineNo(e->node);
    }
    clean_msg(e->message, msg, sizeof msg);
    sps_add_issue(res, e->level == XML_ERR_WARNING ? SPS_WARNING : SPS_SEVERE,
                  line, field, "%s", msg);
out:
    return;
}

/* ------------------------------------------------------------------ */
/* facts                                                                */
/* ------------------------------------------------------------------ */

static xmlNodePtr
child_el(xmlNodePtr parent, const char *ns, const char *name)
{
    xmlNodePtr c = NULL;

    if (parent != NULL) {
        for (c = parent->children; c != NULL; c = c->next) {
            if (c->type == XML_ELEMENT_NODE && c->ns != NULL &&
                xmlStrEqual(c->ns->href, BAD_CAST ns) &&
                xmlStrEqual(c->name, BAD_CAST name))
                break;
        }
    }
    return c;
}

/* Trimmed text of n into buf; 0 ok, -1 absent or too long for buf. */
static int
text_of(xmlNodePtr n, char *buf, size_t len)
{
    xmlChar *t = NULL;
    const char *b, *e;
    int rc = -1;

    buf[0] = '\0';
    if (n == NULL)
        goto out;
    t = xmlNodeGetContent(n);
    if (t == NULL)
        goto out;
    trim_span((const char *)t, &b, &e);
    if ((size_t)(e - b) >= len)
        goto out;
    memcpy(buf, b, (size_t)(e - b));
    buf[e - b] = '\0';
    rc = 0;
out:
    xmlFree(t);
    return rc;
}

/* A code (TypeCode, StatusCode): 1-9 decimal digits, else -1. */
static int
code_of(xmlNodePtr n)
{
    char buf[16];
    int v = -1;
    size_t i;

    if (text_of(n, buf, sizeof buf) == 0 && buf[0] != '\0' &&
        strlen(buf) <= 9) {
        v = 0;
        for (i = 0; buf[i] != '\0' && v >= 0; i++) {
            if (buf[i] < '0' || buf[i] > '9')
                v = -1;
            else
                v = v * 10 + (buf[i] - '0');
        }
    }
    return v;
}

static int
line_of(xmlNodePtr n)
{
    return n != NULL ? (int)xmlGetLineNo(n) : 0;
}

static void
extract_facts(xmlNodePtr root, struct sps_result *res)
{
    struct sps_facts *f = &res->facts;
    xmlNodePtr ed = child_el(root, NS_RSM, "SPSExchangedDocument");
    xmlNodePtr cons = child_el(root, NS_RSM, "SPSConsignment");
    xmlNodePtr n;

    n = child_el(ed, NS_RAM, "ID");
    f->number_line = line_of(n);
    if (n != NULL && text_of(n, f->number, sizeof f->number) != 0)
        sps_add_issue(res, SPS_SEVERE, f->number_line, "SPSExchangedDocument/ID",
                      "SPSExchangedDocument/ID is longer than %zu characters",
                      sizeof f->number - 1);
    n = child_el(ed, NS_RAM, "TypeCode");
    f->type_line = line_of(n);
    f->type = code_of(n);
    n = child_el(ed, NS_RAM, "StatusCode");
    f->status_line = line_of(n);
    f->status = code_of(n);
    n = child_el(child_el(cons, NS_RAM, "ExportSPSCountry"), NS_RAM, "ID");
    f->export_line = line_of(n);
    (void)text_of(n, f->export_country, sizeof f->export_country);
    n = child_el(child_el(cons, NS_RAM, "ImportSPSCountry"), NS_RAM, "ID");
    f->import_line = line_of(n);
    (void)text_of(n, f->import_country, sizeof f->import_country);
}

/* ------------------------------------------------------------------ */
/* validation                                                           */
/* ------------------------------------------------------------------ */

int
sps_validate(const struct sps_schema *s, const struct sps_limits *lim,
             const unsigned char *doc, size_t len, int is_text,
             struct sps_result *res)
{
    struct parse_state st;
    xmlParserCtxtPtr ctxt = NULL;
    xmlDocPtr xdoc = NULL;
    xmlSchemaValidCtxtPtr vctxt = NULL;
    xmlNodePtr root;
    int opts = XML_PARSE_NONET, vrc;

    memset(res, 0, sizeof *res);
    facts_init(&res->facts);
    memset(&st, 0, sizeof st);
    st.res = res;
    st.max_depth = lim != NULL ? lim->max_depth : 0;
    tl_refused[0] = '\0';

    if (doc == NULL || len == 0) {
        sps_add_issue(res, SPS_SEVERE, 0, "", MSG_EMPTY);
        goto out;
    }
    if (lim != NULL && lim->max_bytes > 0 && len > lim->max_bytes) {
        sps_add_issue(res, SPS_SEVERE, 0, "",
                      "document is %zu bytes, more than the limit of %zu",
                      len, lim->max_bytes);
        goto out;
    }
    if (len > INT_MAX) {
        sps_add_issue(res, SPS_SEVERE, 0, "", "document is too large");
        goto out;
    }
    if (s == NULL || s->xsd == NULL) {
        sps_add_issue(res, SPS_SEVERE, 0, "", "no schema loaded");
        goto out;
    }

    ctxt = xmlNewParserCtxt();
    if (ctxt == NULL) {
        sps_add_issue(res, SPS_SEVERE, 0, "", "out of memory");
        goto out;
    }
    ctxt->_private = &st;
    ctxt->sax->internalSubset = sax_internal_subset;
    ctxt->sax->externalSubset = sax_external_subset;
    ctxt->sax->entityDecl = sax_entity_decl;
    ctxt->sax->unparsedEntityDecl = sax_unparsed_entity_decl;
    ctxt->sax->getEntity = sax_get_entity;
    ctxt->sax->getParameterEntity = sax_get_parameter_entity;
    ctxt->sax->reference = sax_reference;
    ctxt->sax->startElementNs = sax_start_element;
    ctxt->sax->endElementNs = sax_end_element;
    ctxt->sax->serror = parse_serror;

    /* Text came out of the SOAP message as UTF-8: whatever its
     * declaration says, it is read as UTF-8.  Bytes: libxml2 detects the
     * encoding from the BOM / declaration. */
    if (is_text)
        opts |= XML_PARSE_IGNORE_ENC;
    xdoc = xmlCtxtReadMemory(ctxt, (const char *)doc, (int)len, NULL,
                             is_text ? "UTF-8" : NULL, opts);
    if (st.refused || xdoc == NULL) {
        if (res->nsevere == 0)
            sps_add_issue(res, SPS_SEVERE, 0, "",
                          "document is not well-formed XML");
        goto out;
    }

    root = xmlDocGetRootElement(xdoc);
    if (root == NULL || root->ns == NULL ||
        !xmlStrEqual(root->ns->href, BAD_CAST NS_RSM) ||
        !xmlStrEqual(root->name, BAD_CAST "SPSCertificate")) {
        char name[ECHO_MAX + 8];

        echo(root != NULL ? (const char *)root->name : "", name, sizeof name);
        sps_add_issue(res, SPS_SEVERE, line_of(root), name,
                      "root element is %s%s%s, expected rsm:SPSCertificate "
                      "(" NS_RSM ")",
                      name,
                      root != NULL && root->ns != NULL ? " in namespace " :
                      " without namespace",
                      root != NULL && root->ns != NULL ?
                      (const char *)root->ns->href : "");
        goto out;
    }
    extract_facts(root, res);

    vctxt = xmlSchemaNewValidCtxt(s->xsd);
    if (vctxt == NULL) {
        sps_add_issue(res, SPS_SEVERE, 0, "", "out of memory");
        goto out;
    }
    xmlSchemaSetValidStructuredErrors(vctxt, valid_serror, res);
    vrc = xmlSchemaValidateDoc(vctxt, xdoc);
    if (vrc != 0 && res->nsevere == 0)
        sps_add_issue(res, SPS_SEVERE, 0, "", vrc > 0 ?
                      "document is not valid against the schema" :
                      "schema validation failed (internal error)");
out:
    if (tl_refused[0] != '\0')
        sps_add_issue(res, SPS_SEVERE, 0, "", "%s", tl_refused);
    if (vctxt != NULL)
        xmlSchemaFreeValidCtxt(vctxt);
    if (xdoc != NULL)
        xmlFreeDoc(xdoc);
    if (ctxt != NULL)
        xmlFreeParserCtxt(ctxt);
    return res->nsevere > INT_MAX ? INT_MAX : (int)res->nsevere;
}

/* ------------------------------------------------------------------ */
/* header                                                               */
/* ------------------------------------------------------------------ */

int
sps_check_header(const struct sps_header *h, struct sps_result *res)
{
    const struct sps_facts *f = &res->facts;
    char a[ECHO_MAX + 4], b[ECHO_MAX + 4], num[sizeof f->number];
    const char *nb, *ne;
    int added = 0;

    if (h == NULL)
        goto out;

    /* certificate number, both sides trimmed */
    trim_span(h->number, &nb, &ne);
    if (f->number[0] == '\0') {
        sps_add_issue(res, SPS_SEVERE, f->number_line, "NPPOCertificateNumber",
                      "header NPPOCertificateNumber '%s' but the document "
                      "has no SPSExchangedDocument/ID",
                      echo(h->number, a, sizeof a));
        added++;
    } else if ((size_t)(ne - nb) != strlen(f->number) ||
               memcmp(nb, f->number, (size_t)(ne - nb)) != 0) {
        size_t k = (size_t)(ne - nb) < sizeof num ? (size_t)(ne - nb)
                                                  : sizeof num - 1;

        memcpy(num, nb, k);
        num[k] = '\0';
        sps_add_issue(res, SPS_SEVERE, f->number_line, "NPPOCertificateNumber",
                      "header NPPOCertificateNumber '%s' differs from "
                      "SPSExchangedDocument/ID '%s' (line %d)",
                      echo(num, a, sizeof a), echo(f->number, b, sizeof b),
                      f->number_line);
        added++;
    }

    /* destination */
    if (f->import_country[0] == '\0') {
        sps_add_issue(res, SPS_SEVERE, 0, "To",
                      "header To '%s' but the document has no "
                      "SPSConsignment/ImportSPSCountry/ID",
                      echo(h->to, a, sizeof a));
        added++;
    } else if (h->to == NULL || strcmp(h->to, f->import_country) != 0) {
        sps_add_issue(res, SPS_SEVERE, f->import_line, "To",
                      "header To '%s' differs from "
                      "SPSConsignment/ImportSPSCountry/ID '%s' (line %d)",
                      echo(h->to, a, sizeof a), f->import_country,
                      f->import_line);
        added++;
    }

    /* type */
    if (f->type < 0) {
        sps_add_issue(res, SPS_SEVERE, f->type_line, "CertificateType",
                      "header CertificateType %d but the document has no "
                      "valid SPSExchangedDocument/TypeCode", h->type);
        added++;
    } else if (h->type != f->type) {
        sps_add_issue(res, SPS_SEVERE, f->type_line, "CertificateType",
                      "header CertificateType %d differs from "
                      "SPSExchangedDocument/TypeCode %d (line %d)",
                      h->type, f->type, f->type_line);
        added++;
    }

    /* status */
    if (f->status < 0) {
        sps_add_issue(res, SPS_SEVERE, f->status_line, "CertificateStatus",
                      "header CertificateStatus %d but the document has no "
                      "valid SPSExchangedDocument/StatusCode", h->status);
        added++;
    } else if (h->status != f->status) {
        sps_add_issue(res, SPS_SEVERE, f->status_line, "CertificateStatus",
                      "header CertificateStatus %d differs from "
                      "SPSExchangedDocument/StatusCode %d (line %d)",
                      h->status, f->status, f->status_line);
        added++;
    }

    /* issuing country, only when the document names one */
    if (f->export_country[0] != '\0' &&
        (h->from == NULL || strcmp(h->from, f->export_country) != 0)) {
        sps_add_issue(res, SPS_SEVERE, f->export_line, "From",
                      "header From '%s' differs from "
                      "SPSConsignment/ExportSPSCountry/ID '%s' (line %d)",
                      echo(h->from, a, sizeof a), f->export_country,
                      f->export_line);
        added++;
    }
out:
    return added;
}

/* ------------------------------------------------------------------ */
/* serving content back                                                 */
/* ------------------------------------------------------------------ */

int
sps_is_plain_utf8(const unsigned char *b, size_t len)
{
    size_t i = 0, k, n;
    uint32_t cp;
    int ok = 1;

    if (b == NULL)
        ok = len == 0;
    else if (len >= 3 && b[0] == 0xEF && b[1] == 0xBB && b[2] == 0xBF)
        ok = 0;
    while (ok && i < len) {
        unsigned char c = b[i];
        uint64_t v;

        /* Eight ASCII bytes at a time, none of them below 0x20 (the
         * answer's hot path: certificates are mostly ASCII). */
        if (len - i >= 8) {
            memcpy(&v, b + i, 8);
            if ((v & 0x8080808080808080ULL) == 0 &&
                ((v - 0x2020202020202020ULL) & ~v &
                 0x8080808080808080ULL) == 0) {
                i += 8;
                continue;
            }
        }
        if (c < 0x80) {
            /* XML 1.0 allows TAB, LF, CR below 0x20; NUL never. */
            if (c < 0x20 && c != '\t' && c != '\n' && c != '\r')
                ok = 0;
            i++;
            continue;
        }
        if (c >= 0xC2 && c <= 0xDF) {
            n = 1;
            cp = c & 0x1F;
        } else if (c >= 0xE0 && c <= 0xEF) {
            n = 2;
            cp = c & 0x0F;
        } else if (c >= 0xF0 && c <= 0xF4) {
            n = 3;
            cp = c & 0x07;
        } else {
            ok = 0;             /* stray continuation, overlong lead C0/C1, F5..FF */
            break;
        }
        if (len - i - 1 < n) {
            ok = 0;
            break;
        }
        for (k = 1; k <= n && ok; k++) {
            if ((b[i + k] & 0xC0) != 0x80)
                ok = 0;
            cp = (cp << 6) | (b[i + k] & 0x3F);
        }
        if (ok && ((n == 2 && cp < 0x800) ||
                   (n == 3 && (cp < 0x10000 || cp > 0x10FFFF)) ||
                   (cp >= 0xD800 && cp <= 0xDFFF) ||
                   cp == 0xFFFE || cp == 0xFFFF))
            ok = 0;
        i += n + 1;
    }
    return ok;
}
