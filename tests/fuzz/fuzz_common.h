/*
 * fuzz_common.h - helpers shared by the libFuzzer harnesses: a private
 * temporary directory per process, throwaway keys and certificates,
 * small file writes.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */
#ifndef ECERT_FUZZ_COMMON_H
#define ECERT_FUZZ_COMMON_H

#include <stddef.h>

/* The process's own directory under $TMPDIR (or /tmp), made on the first
 * call and removed with everything in it at exit.  Aborts on failure. */
const char *fuzz_tmpdir(void);

/* fuzz_tmpdir()/rel as a malloc'd string (the caller frees it). */
char *fuzz_path(const char *rel);

/* mkdir -p of fuzz_tmpdir()/rel.  Aborts on failure. */
void fuzz_mkdir(const char *rel);

/* Write n bytes to path with the given mode (truncating).  0 ok, -1 err. */
int fuzz_write(const char *path, const void *data, size_t n, int mode);

/* A fresh EC P-256 key and a self-signed certificate for it (CN = cn,
 * valid now and for ten years, with the usages S/MIME and TLS need),
 * written as PEM to crt_path and key_path (the key 0600).  Aborts on
 * failure. */
void fuzz_make_cert(const char *cn, const char *crt_path, const char *key_path);

/* Die with a message (set-up failures only, never for an input). */
void fuzz_die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

/* Root of the source tree (for wsdl/spscert): $ECERT_SRCDIR, else the
 * compile-time FUZZ_SRCDIR, else ".". */
const char *fuzz_srcdir(void);

#endif
