/*
 * fuzz_sps.c - libFuzzer harness for the content checks of gateway/sps.c:
 * sps_decode (text or base64), sps_validate (libxml2 parse, limits,
 * XSD validation, facts) and sps_check_header.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * The input is the envelope's Content string as a client sends it (XML
 * text or base64).  The XSD set is compiled once, in
 * LLVMFuzzerInitialize, from wsdl/spscert ($ECERT_SRCDIR overrides the
 * source tree's location).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sps.h"
#include "fuzz_common.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct sps_schema *schema;
static struct sps_schema *schema_free_at_exit;

/* As in the daemon's defaults (config limits.xml_depth, max_request_bytes). */
static const struct sps_limits limits = { 64, 4u << 20 };

static void
free_schema(void)
{
    sps_schema_free(schema_free_at_exit);
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    char dir[4096], err[512];

    (void)argc;
    (void)argv;
    sps_init();
    snprintf(dir, sizeof dir, "%s/wsdl/spscert", fuzz_srcdir());
    if (sps_schema_load(dir, &schema, err, sizeof err) != 0)
        fuzz_die("schema %s: %s", dir, err);
    schema_free_at_exit = schema;
    atexit(free_schema);
    return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct sps_result *res, *res2;
    struct sps_header h;
    unsigned char *doc = NULL;
    size_t doclen = 0;
    char *content, err[512];
    int is_text = 0;

    /* The SOAP layer hands over a NUL-terminated string; its length is
     * what the daemon passes (strlen), so stop at an embedded NUL too. */
    content = malloc(size + 1);
    res = malloc(sizeof *res);
    res2 = malloc(sizeof *res2);
    if (content == NULL || res == NULL || res2 == NULL)
        abort();
    memcpy(content, data, size);
    content[size] = '\0';

    (void)sps_is_plain_utf8(data, size);

    if (sps_decode(content, strlen(content), &doc, &doclen, &is_text, err,
                   sizeof err) == 0) {
        sps_validate(schema, &limits, doc, doclen, is_text, res);
        memcpy(res2, res, sizeof *res2);

        /* A header that disagrees with the facts (the usual sample's) ... */
        h.from = "BO";
        h.to = "EC";
        h.type = 851;
        h.status = 70;
        h.number = "491412337BO";
        sps_check_header(&h, res);

        /* ... and one that repeats them, for the agreeing paths. */
        h.from = res2->facts.export_country;
        h.to = res2->facts.import_country;
        h.type = res2->facts.type;
        h.status = res2->facts.status;
        h.number = res2->facts.number;
        sps_check_header(&h, res2);
    }
    free(doc);

    /* The raw bytes as a document of their own (encoding detection). */
    if (size > 0)
        sps_validate(schema, &limits, data, size, 0, res);

    free(res2);
    free(res);
    free(content);
    return 0;
}
