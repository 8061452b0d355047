/*
 * fuzz_common.c - helpers shared by the libFuzzer harnesses.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "fuzz_common.h"

static char tmpdir[4096];
static pid_t tmpdir_owner;

void
fuzz_die(const char *fmt, ...)
{
    va_list ap;

    fprintf(stderr, "fuzz set-up: ");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    abort();
}

static int
rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)ftw;
    if (flag == FTW_DP)
        rmdir(path);
    else
        unlink(path);
    return 0;
}

static void
tmpdir_cleanup(void)
{
    /* Only the process that made it (libFuzzer may fork). */
    if (tmpdir[0] != '\0' && getpid() == tmpdir_owner)
        nftw(tmpdir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

const char *
fuzz_tmpdir(void)
{
    const char *base;

    if (tmpdir[0] != '\0')
        return tmpdir;
    base = getenv("TMPDIR");
    if (base == NULL || *base == '\0')
        base = "/tmp";
    snprintf(tmpdir, sizeof tmpdir, "%s/ecert-fuzz.XXXXXX", base);
    if (mkdtemp(tmpdir) == NULL)
        fuzz_die("mkdtemp %s: %s", tmpdir, strerror(errno));
    tmpdir_owner = getpid();
    atexit(tmpdir_cleanup);
    return tmpdir;
}

char *
fuzz_path(const char *rel)
{
    char *p;

    if (asprintf(&p, "%s/%s", fuzz_tmpdir(), rel) < 0)
        fuzz_die("out of memory");
    return p;
}

void
fuzz_mkdir(const char *rel)
{
    char *p = fuzz_path(rel), *s;

    for (s = p + strlen(fuzz_tmpdir()) + 1; ; s++) {
        if (*s == '/' || *s == '\0') {
            char c = *s;

            *s = '\0';
            if (mkdir(p, 0700) < 0 && errno != EEXIST)
                fuzz_die("mkdir %s: %s", p, strerror(errno));
            *s = c;
            if (c == '\0')
                break;
        }
    }
    free(p);
}

int
fuzz_write(const char *path, const void *data, size_t n, int mode)
{
    const char *b = data;
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);

    if (fd < 0)
        return -1;
    while (n > 0) {
        ssize_t w = write(fd, b, n);

        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            close(fd);
            return -1;
        }
        b += w;
        n -= (size_t)w;
    }
    if (fchmod(fd, (mode_t)mode) < 0) {
        close(fd);
        return -1;
    }
    return close(fd);
}

static void
add_ext(X509 *crt, int nid, const char *value)
{
    X509V3_CTX ctx;
    X509_EXTENSION *ext;

    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, crt, crt, NULL, NULL, 0);
    ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
    if (ext == NULL || !X509_add_ext(crt, ext, -1))
        fuzz_die("certificate extension %d", nid);
    X509_EXTENSION_free(ext);
}

void
fuzz_make_cert(const char *cn, const char *crt_path, const char *key_path)
{
    EVP_PKEY *key = EVP_EC_gen("P-256");
    X509 *crt = X509_new();
    X509_NAME *name;
    FILE *f;
    int fd;

    if (key == NULL || crt == NULL)
        fuzz_die("key generation failed");
    X509_set_version(crt, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(crt), (long)(getpid() & 0x7fff) + 1);
    X509_gmtime_adj(X509_getm_notBefore(crt), -3600);
    X509_gmtime_adj(X509_getm_notAfter(crt), 10L * 365 * 86400);
    X509_set_pubkey(crt, key);
    name = X509_get_subject_name(crt);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                               (const unsigned char *)cn, -1, -1, 0);
    X509_set_issuer_name(crt, name);
    add_ext(crt, NID_basic_constraints, "critical,CA:TRUE");
    add_ext(crt, NID_key_usage,
            "critical,digitalSignature,keyAgreement,keyCertSign");
    add_ext(crt, NID_ext_key_usage, "serverAuth,clientAuth,emailProtection");
    add_ext(crt, NID_subject_key_identifier, "hash");
    if (!X509_sign(crt, key, EVP_sha256()))
        fuzz_die("self-signing %s failed", cn);

    f = fopen(crt_path, "w");
    if (f == NULL || !PEM_write_X509(f, crt) || fclose(f) != 0)
        fuzz_die("write %s", crt_path);
    fd = open(key_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    f = fd >= 0 ? fdopen(fd, "w") : NULL;
    if (f == NULL || !PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL) ||
        fclose(f) != 0)
        fuzz_die("write %s", key_path);
    X509_free(crt);
    EVP_PKEY_free(key);
}

const char *
fuzz_srcdir(void)
{
    const char *s = getenv("ECERT_SRCDIR");

    if (s != NULL && *s != '\0')
        return s;
#ifdef FUZZ_SRCDIR
    return FUZZ_SRCDIR;
#else
    return ".";
#endif
}
