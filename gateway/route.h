/*
 * route.h - who may hand in what, and to whom it goes.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * Used by the SOAP hand-in (caller = the partner of the client
 * certificate) and by `ecertctl submit` (caller = NULL: the operator,
 * handing in for this gateway's own country).
 */
#ifndef ECERT_ROUTE_H
#define ECERT_ROUTE_H

#include <stddef.h>
#include "config.h"
#include "queue.h"

#define ROUTE_MAX_ADDRESSEES 64

/* Check that caller may hand in an envelope from `from` to `to` and list
 * the addressee deliveries (partner x channel) in out[] (*n of them).
 * Rules: the caller needs the submit role; `from` must be the caller's
 * own country (the gateway's country for the operator); a partner of
 * another country may only address this gateway's country; at least one
 * configured partner must receive for `to`.  Addressees: every partner
 * of country `to`, once per channel it receives on (pull role: pull;
 * a mail group: smtp).  0 ok; -1 with err filled
 * (a message fit for a SOAP fault: it names only the caller's own data
 * and the header fields). */
int route_handin(const struct config *c, const struct partner *caller,
                 const char *from, const char *to,
                 struct q_addressee *out, size_t max, size_t *n,
                 char *err, size_t errlen);

/* 1 if s is two upper-case ASCII letters. */
int route_country_ok(const char *s);

#endif
