/*
 * fuzz_config.c - libFuzzer harness for config_load (config/config.c):
 * the input is the configuration file's text.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * LLVMFuzzerInitialize lays out, in a private temporary directory, the
 * files config/ecertd.example.conf names by relative path (../var/dev-ca
 * certificates and keys, ../wsdl/spscert, relay CA and auth files), so
 * that a valid-looking input gets through every section and not only to
 * the first missing file.  Each input is written to the same file,
 * config/fuzz.conf, in that directory.  FUZZ_CONFIG_ECHO=1 prints why
 * each input was refused.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "fuzz_common.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char *conf_path;
static int echo;        /* FUZZ_CONFIG_ECHO=1: say why an input failed */

static void
cert_pair(const char *name)
{
    char rel[256];
    char *crt, *key;

    snprintf(rel, sizeof rel, "var/dev-ca/%s.crt", name);
    crt = fuzz_path(rel);
    snprintf(rel, sizeof rel, "var/dev-ca/%s.key", name);
    key = fuzz_path(rel);
    fuzz_make_cert(name, crt, key);
    free(crt);
    free(key);
}

static void
put(const char *rel, const char *text, int mode)
{
    char *p = fuzz_path(rel);

    if (fuzz_write(p, text, strlen(text), mode) != 0)
        fuzz_die("write %s: %s", p, strerror(errno));
    free(p);
}

static void
free_path(void)
{
    free(conf_path);
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    static const char *const names[] = {
        "ca", "server", "bo-issuer", "bo-import", "ec-nppo", "pe-nppo",
        "nl-nppo", "mail-signer", "relay-ca",
    };
    char target[4096], *link;
    size_t i;

    (void)argc;
    (void)argv;
    echo = getenv("FUZZ_CONFIG_ECHO") != NULL;
    fuzz_mkdir("config");
    fuzz_mkdir("var/dev-ca");
    fuzz_mkdir("wsdl");
    for (i = 0; i < sizeof names / sizeof names[0]; i++)
        cert_pair(names[i]);
    /* A relative path in the file is relative to the file's directory. */
    put("config/relay.auth", "user:secret:with:colons\n", 0600);
    put("config/ec-relay.auth", "ec:pw\n", 0600);
    put("config/world-readable.auth", "u:p\n", 0644);
    put("config/empty.auth", "", 0600);
    put("config/not-a-cert.pem", "-----BEGIN CERTIFICATE-----\nAAAA\n"
        "-----END CERTIFICATE-----\n", 0644);
    link = fuzz_path("config/relay-ca.crt");
    snprintf(target, sizeof target, "%s/var/dev-ca/relay-ca.crt",
             fuzz_tmpdir());
    if (symlink(target, link) != 0)
        fuzz_die("symlink %s: %s", link, strerror(errno));
    free(link);
    link = fuzz_path("wsdl/spscert");
    snprintf(target, sizeof target, "%s/wsdl/spscert", fuzz_srcdir());
    if (target[0] != '/') {
        char cwd[2048];

        if (getcwd(cwd, sizeof cwd) == NULL)
            fuzz_die("getcwd: %s", strerror(errno));
        snprintf(target, sizeof target, "%s/%s/wsdl/spscert", cwd,
                 fuzz_srcdir());
    }
    if (symlink(target, link) != 0)
        fuzz_die("symlink %s: %s", link, strerror(errno));
    free(link);
    conf_path = fuzz_path("config/fuzz.conf");
    atexit(free_path);
    return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct config *c = NULL;
    char err[1024];

    if (fuzz_write(conf_path, data, size, 0644) != 0)
        fuzz_die("write %s: %s", conf_path, strerror(errno));
    if (config_load(conf_path, &c, err, sizeof err) != 0) {
        if (echo)
            fprintf(stderr, "config: %s\n", err);
    } else {
        if (echo)
            fprintf(stderr, "config: loaded, %zu partners\n", c->npartners);
        unsigned char sha[32];
        char hex[65];

        /* Touch what the daemon reads back from a loaded configuration. */
        if (c->npartners > 0) {
            config_hex(c->partners[0].spki_sha256, hex);
            if (config_parse_fingerprint(hex, sha) != 0 ||
                config_partner_by_spki(c, sha) == NULL ||
                config_partner_by_id(c, c->partners[0].id) == NULL)
                abort();    /* a loaded partner must be found again */
        }
        config_free(c);
    }
    return 0;
}
