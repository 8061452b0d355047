/*
 * sps.h - decode and check the content of an envelope: an UN/CEFACT
 * SPSCertificate (17p0) document.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * libxml2 is used without network access, without DTD loading and without
 * entity substitution: a document that carries a DOCTYPE at all is refused.
 * The XSD set is compiled once (sps_schema_load) and then shared read-only
 * by every thread.
 */
#ifndef ECERT_SPS_H
#define ECERT_SPS_H

#include <stddef.h>

struct sps_schema;

/* Compile dir/data/standard/SPSCertificate_17p0.xsd (no network).
 * 0 ok; -1 with err filled. */
int sps_schema_load(const char *dir, struct sps_schema **out,
                    char *err, size_t errlen);
void sps_schema_free(struct sps_schema *s);

/* Call once per process before threads start (xmlInitParser and the
 * global settings that keep libxml2 off the network). */
void sps_init(void);

/* Content as it arrives in an envelope: either the XML document as text
 * (the SOAP string, UTF-8) or base64 of the document's bytes (then any
 * encoding libxml2 knows, UTF-16 with BOM included).  Leading/trailing
 * white space around base64 is ignored.  On success *doc is malloc'd
 * (caller frees), *is_text says which form it was.  0 ok; -1 with err. */
int sps_decode(const char *content, size_t len, unsigned char **doc,
               size_t *doclen, int *is_text, char *err, size_t errlen);

enum sps_level { SPS_SEVERE = 0, SPS_WARNING = 1, SPS_INFO = 2 };

struct sps_issue {
    int level;                /* enum sps_level */
    int line;                 /* line in the document, 0 if none */
    char field[96];           /* element path or header field */
    char msg[400];
};

#define SPS_MAX_ISSUES 32

/* What the document says about itself (empty strings / -1 if absent). */
struct sps_facts {
    char number[128];         /* SPSExchangedDocument/ID */
    int type;                 /* SPSExchangedDocument/TypeCode */
    int status;               /* SPSExchangedDocument/StatusCode */
    char export_country[8];   /* SPSConsignment/ExportSPSCountry/ID */
    char import_country[8];   /* SPSConsignment/ImportSPSCountry/ID */
    /* Line of each element in the document, 0 if absent. */
    int number_line, type_line, status_line, export_line, import_line;
};

struct sps_result {
    struct sps_facts facts;
    struct sps_issue issues[SPS_MAX_ISSUES];
    size_t nissues;           /* capped at SPS_MAX_ISSUES */
    size_t nsevere;           /* all severe issues, even past the cap */
};

struct sps_limits {
    int max_depth;            /* element nesting */
    size_t max_bytes;         /* document size */
};

/* Parse doc (is_text: UTF-8 text, encoding declaration ignored; else
 * bytes, encoding detected), check limits, validate against the schema,
 * extract the facts.  Fills res; returns the number of SEVERE issues
 * (0 = valid). */
int sps_validate(const struct sps_schema *s, const struct sps_limits *lim,
                 const unsigned char *doc, size_t len, int is_text,
                 struct sps_result *res);

/* The envelope header as handed in. */
struct sps_header {
    const char *from, *to;
    int type, status;
    const char *number;
};

/* Add SEVERE issues to res where the header disagrees with the facts
 * (certificate number, destination country, type, status, and the
 * issuing country when the document names one).  Returns the number of
 * issues added. */
int sps_check_header(const struct sps_header *h, struct sps_result *res);

/* Add an issue (used by callers for their own checks too). */
void sps_add_issue(struct sps_result *res, int level, int line,
                   const char *field, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

/* Content to serve back: 1 if bytes are valid UTF-8 text without a BOM
 * that can go into a SOAP string as is; 0 if they must go as base64. */
int sps_is_plain_utf8(const unsigned char *b, size_t len);

#endif
