/*
 * route.c - hand-in authorization and addressee resolution.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */
#include <stdio.h>
#include <string.h>

#include "route.h"

int
route_country_ok(const char *s)
{
    return s != NULL && s[0] >= 'A' && s[0] <= 'Z' && s[1] >= 'A' &&
           s[1] <= 'Z' && s[2] == '\0';
}

int
route_handin(const struct config *c, const struct partner *caller,
             const char *from, const char *to,
             struct q_addressee *out, size_t max, size_t *n,
             char *err, size_t errlen)
{
    const char *own = caller != NULL ? caller->country : c->country;
    size_t i;

    *n = 0;
    if (caller != NULL && !(caller->roles & ROLE_SUBMIT)) {
        snprintf(err, errlen, "partner %s may not hand in certificates "
                 "(no submit role)", caller->id);
        return -1;
    }
    if (!route_country_ok(from)) {
        snprintf(err, errlen, "From: '%.8s' is not an ISO 3166-1 alpha-2 "
                 "country code", from != NULL ? from : "");
        return -1;
    }
    if (!route_country_ok(to)) {
        snprintf(err, errlen, "To: '%.8s' is not an ISO 3166-1 alpha-2 "
                 "country code", to != NULL ? to : "");
        return -1;
    }
    if (strcmp(from, own) != 0) {
        snprintf(err, errlen, "From: %s is not the caller's own country %s",
                 from, own);
        return -1;
    }
    if (strcmp(from, to) == 0) {
        snprintf(err, errlen, "To: %s is the issuing country itself", to);
        return -1;
    }
    if (strcmp(own, c->country) != 0 && strcmp(to, c->country) != 0) {
        snprintf(err, errlen, "To: %s: a partner of %s may only deliver to "
                 "this gateway's country %s", to, own, c->country);
        return -1;
    }
    for (i = 0; i < c->npartners; i++) {
        const struct partner *p = &c->partners[i];
        int ch;

        if (strcmp(p->country, to) != 0)
            continue;
        for (ch = Q_CH_PULL; ch <= Q_CH_SMTP; ch++) {
            if (ch == Q_CH_PULL && !(p->roles & ROLE_PULL))
                continue;
            if (ch == Q_CH_SMTP && p->mail == NULL)
                continue;
            if (*n == max) {
                snprintf(err, errlen, "To: %s has more than %zu receiving "
                         "channels", to, max);
                return -1;
            }
            out[*n].partner = p->id;
            out[*n].channel = ch;
            (*n)++;
        }
    }
    if (*n == 0) {
        snprintf(err, errlen, "To: no partner of this gateway receives "
                 "certificates for %s", to);
        return -1;
    }
    return 0;
}
