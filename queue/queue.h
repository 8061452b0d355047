/*
 * queue.h - the only door to the persistent queue and certificate store.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * Two record kinds live behind this API:
 *   certificate  one handed-in version of a certificate: issuer country,
 *                number, version, type, status, the content bytes exactly
 *                as handed in, their SHA-256, who handed it in and when.
 *   delivery     one per certificate version x addressee partner x channel,
 *                with a state machine, attempts, next attempt, last error.
 *
 * A hand-in gets one tracking number; the addressees' deliveries share it
 * and are told apart by (partner, channel).
 *
 * The rule that keeps partners apart: every call that a partner's request
 * can reach takes the calling partner and puts it in the query's WHERE
 * clause; "not yours" and "does not exist" give the same answer
 * (Q_NOTFOUND).  The queue_op_* calls are for the operator (ecertctl) only.
 *
 * Conventions: calls return Q_OK (0), Q_NOTFOUND (1) or Q_ERR (-1); on
 * Q_ERR, err (caller-owned, errlen bytes) holds a message a person can act
 * on and *retryable-style classification is given by queue_err_transient().
 * One struct queue per thread: a handle is not shared between threads.
 * Nothing here knows about SOAP, mail or the configuration file.
 */
#ifndef ECERT_QUEUE_H
#define ECERT_QUEUE_H

#include <stddef.h>
#include <stdint.h>

#define Q_OK        0
#define Q_NOTFOUND  1
#define Q_ERR      (-1)

#define Q_TRACKING_MAX  48   /* buffer size for a tracking number */
#define Q_PARTNER_MAX   64   /* buffer size for a partner id */
#define Q_NUMBER_MAX   128   /* buffer size for a certificate number */
#define Q_ERROR_MAX    512   /* buffer size for a stored last error */

/* Delivery channels. */
enum q_channel { Q_CH_PULL = 1, Q_CH_SMTP = 2 };

/* Delivery states.  Pull: waiting -> delivered | delivered_warnings |
 * not_readable | failed.  Mail: waiting -> sending -> delivered |
 * deferred -> sending ... | dead.  held may stand beside any non-final
 * state (operator). */
enum q_state {
    Q_WAITING = 0,
    Q_SENDING,
    Q_DEFERRED,
    Q_DELIVERED,
    Q_DELIVERED_WARNINGS,
    Q_NOT_READABLE,
    Q_FAILED,
    Q_DEAD,
    Q_HELD,
    Q_NSTATES
};

const char *q_state_name(int state);        /* "waiting", ... or "?" */
int q_state_parse(const char *name);        /* -1 if unknown */
const char *q_channel_name(int channel);    /* "pull", "smtp" */
int q_channel_parse(const char *name);      /* -1 if unknown */
int q_state_final(int state);               /* delivered..dead: 1 */

struct queue;

/* Open (creating if need be) the store at path: WAL, synchronous=FULL,
 * foreign keys on, busy timeout, schema created or checked against the
 * schema version table.  readonly != 0 opens for reading only. */
int queue_open(struct queue **qp, const char *path, int readonly,
               char *err, size_t errlen);
void queue_close(struct queue *q);

/* 1 if the last Q_ERR of this handle was transient (store busy, disk
 * full, I/O error): the caller may answer "try again later". */
int queue_err_transient(const struct queue *q);

/* Test and benchmark hook: 0 switches fsync off (synchronous=OFF). */
int queue_set_sync(struct queue *q, int on);

/* ---- hand-in ------------------------------------------------------- */

struct q_addressee {
    const char *partner;     /* partner id */
    int channel;             /* enum q_channel */
};

struct q_handin {
    const char *from;        /* issuer country, ISO 3166-1 alpha-2 */
    const char *to;          /* destination country */
    int type;                /* e.g. 851 */
    int status;              /* e.g. 70 */
    const char *number;      /* NPPO certificate number */
    const char *sender;      /* partner id that handed it in */
    const unsigned char *content;
    size_t content_len;
    const struct q_addressee *to_partners;
    size_t nto;              /* >= 1 */
};

/* Store a certificate and its deliveries in one transaction; returns only
 * after the commit is durable.  The same (from, number, SHA-256) handed
 * in again stores nothing and returns the first tracking number with
 * *duplicate = 1; the same (from, number) with other content is stored as
 * the next version with a new tracking number and new deliveries.
 * tracking must hold Q_TRACKING_MAX bytes. */
int queue_handin(struct queue *q, const struct q_handin *in,
                 char *tracking, int *duplicate, char *err, size_t errlen);

/* ---- what a partner sees ------------------------------------------- */

/* One envelope as a partner sees it.  Pointers are valid only during the
 * callback; content is NULL when the call does not fetch it. */
struct q_envelope {
    const char *tracking;
    const char *from, *to;
    int type, status, version;
    const char *number;
    const char *sender;
    int64_t received_ms;            /* unix time, milliseconds */
    const unsigned char *sha256;    /* 32 bytes */
    const unsigned char *content;
    size_t content_len;
    int state;                      /* the caller's delivery state, or
                                       the summary state for the sender */
    const char *last_error;         /* "" if none */
};

/* Return non-zero from a callback to stop early (the call then returns
 * Q_OK with what it has done). */
typedef int (*q_envelope_cb)(void *arg, const struct q_envelope *e);

/* Waiting pull deliveries of partner, oldest first, at most limit,
 * without content. Returns Q_OK. */
int queue_headers(struct queue *q, const char *partner, int limit,
                  q_envelope_cb cb, void *arg, char *err, size_t errlen);

/* Waiting pull deliveries of partner with content, oldest first, at most
 * limit; each is marked as pulled (time, count) but stays waiting until
 * acknowledged. */
int queue_pull(struct queue *q, const char *partner, int limit,
               q_envelope_cb cb, void *arg, char *err, size_t errlen);

/* One pull delivery of partner by tracking number, with content, in any
 * state.  Q_NOTFOUND if there is no such delivery for this partner. */
int queue_pull_one(struct queue *q, const char *partner, const char *tracking,
                   q_envelope_cb cb, void *arg, char *err, size_t errlen);

/* Acknowledge partner's pull delivery: state is Q_DELIVERED,
 * Q_DELIVERED_WARNINGS, Q_NOT_READABLE or Q_FAILED; message (may be NULL)
 * is kept as the last error.  Idempotent: acknowledging a delivery that
 * is already final changes nothing and returns Q_OK.  Q_NOTFOUND if
 * partner has no such delivery. */
int queue_ack(struct queue *q, const char *partner, const char *tracking,
              int state, const char *message, char *err, size_t errlen);

/* Tracking information for partner, who must be the sender or an
 * addressee of tracking.  For an addressee, state is its own pull (else
 * mail) delivery's; for the sender, the least advanced of all the
 * deliveries (waiting/sending/deferred/held first, then failed/dead,
 * not_readable, delivered_warnings, delivered).  No content. */
int queue_track(struct queue *q, const char *partner, const char *tracking,
                q_envelope_cb cb, void *arg, char *err, size_t errlen);

/* ---- operator (ecertctl) -------------------------------------------- */

struct q_status_row {
    const char *partner;
    int channel;
    int state;
    int64_t count;
    int64_t oldest_ms;        /* creation time of the oldest in this row */
    int64_t next_attempt_ms;  /* earliest next attempt, 0 if none */
};
typedef int (*q_status_cb)(void *arg, const struct q_status_row *r);

/* Counts of deliveries by partner x channel x state. */
int queue_op_status(struct queue *q, q_status_cb cb, void *arg,
                    char *err, size_t errlen);

struct q_delivery {
    const char *tracking;
    const char *partner;
    int channel;
    int state;
    int attempts;
    int64_t created_ms, updated_ms, next_attempt_ms, pulled_ms;
    int pull_count;
    const char *last_error;     /* "" if none */
    /* the certificate it belongs to */
    const char *from, *to, *number;
    int type, status, version;
};
typedef int (*q_delivery_cb)(void *arg, const struct q_delivery *d);

struct q_filter {
    const char *partner;   /* NULL: any */
    int state;             /* -1: any */
    int channel;           /* 0: any */
    int limit;             /* <= 0: no limit */
};

/* Deliveries matching filter, oldest first. */
int queue_op_list(struct queue *q, const struct q_filter *f,
                  q_delivery_cb cb, void *arg, char *err, size_t errlen);

struct q_event {
    const char *partner;
    int channel;
    int64_t at_ms;
    int state;             /* state entered */
    const char *note;      /* "" if none */
};
typedef int (*q_event_cb)(void *arg, const struct q_event *ev);

/* The certificate of tracking (content included) through env_cb, then
 * its deliveries through del_cb, then their history (every state change,
 * oldest first) through ev_cb; any callback may be NULL.  Q_NOTFOUND if
 * there is no such tracking number. */
int queue_op_show(struct queue *q, const char *tracking,
                  q_envelope_cb env_cb, q_delivery_cb del_cb,
                  q_event_cb ev_cb, void *arg, char *err, size_t errlen);

/* Integrity check ("ok" or SQLite's complaint in err). */
int queue_op_check(struct queue *q, char *err, size_t errlen);

/* ---- mail push (the daemon's push workers) --------------------------------
 * These calls are not reachable by a partner's request: the push worker
 * and the operator use them.  Every state change is durable (committed)
 * before the call returns, and is recorded in the history. */

/* One claimed mail delivery with its certificate.  Pointers are valid
 * only during the callback. */
struct q_mail {
    int64_t delivery_id;
    const char *tracking;
    const char *partner;
    int attempts;                   /* including this one */
    int64_t created_ms;             /* when the delivery was created */
    const char *from, *to;
    int type, status, version;
    const char *number;
    const char *sender;
    int64_t received_ms;
    const unsigned char *sha256;    /* 32 bytes */
    const unsigned char *content;
    size_t content_len;
};
/* Called once for every claimed delivery; the return value is ignored
 * (a claimed delivery is sending whatever the callback thinks of it). */
typedef int (*q_mail_cb)(void *arg, const struct q_mail *m);

#define Q_MAIL_BATCH_MAX 256    /* most deliveries one claim may take */

/* Which due deliveries may be claimed together: the caller's group of a
 * partner's mail (ecertd: the index of the partner's relay, so that one
 * SMTP session can carry the batch), or a negative number when that
 * partner's mail is not to be claimed now (its relay is at its limit).
 * Called during the claim with the store's read cursor open: it must not
 * call back into the store. */
typedef int (*q_mail_group_cb)(void *arg, const char *partner);

/* Claim up to max (1..Q_MAIL_BATCH_MAX) due mail deliveries (state
 * waiting or deferred, next_attempt_ms <= now_ms) in one transaction: the
 * oldest due one whose group is not negative, then the next due ones of
 * the same group, oldest due first (looking a bounded distance ahead, so
 * a long backlog of other groups is not walked for them).  Each becomes
 * sending, attempts + 1, next_attempt_ms = now_ms + lease_ms (the lease),
 * with an "attempt N" event; held deliveries are never claimed.  After the
 * commit, cb is called for each, in that order.  group NULL: every partner
 * is in group 0.  *claimed (may be NULL) = how many.  Q_OK if at least one
 * was claimed, Q_NOTFOUND if nothing is due. */
int queue_mail_claim_batch(struct queue *q, int64_t now_ms, int64_t lease_ms,
                           size_t max, q_mail_group_cb group, void *group_arg,
                           q_mail_cb cb, void *arg, size_t *claimed,
                           char *err, size_t errlen);

/* Claim the oldest due mail delivery whose partner is not in
 * skip[0..nskip-1]: queue_mail_claim_batch with max 1. */
int queue_mail_claim(struct queue *q, int64_t now_ms, int64_t lease_ms,
                     const char *const *skip, size_t nskip,
                     q_mail_cb cb, void *arg, char *err, size_t errlen);

/* The outcome of one claimed delivery. */
struct q_mail_outcome {
    int64_t delivery_id;
    int state;                 /* Q_DELIVERED, Q_DEFERRED or Q_DEAD */
    int64_t next_ms;           /* Q_DEFERRED: when to try again */
    const char *error;         /* kept as the last error (the server's
                                  reply: code and text); may be NULL */
    int result;                /* set by the call: Q_OK, or Q_NOTFOUND if
                                  the delivery was no longer sending */
};

/* Record o[0..n-1] in one transaction.  An outcome applies only if its
 * delivery is still sending (an operator may have moved it): otherwise
 * its result is Q_NOTFOUND and that delivery is left as it is.  Q_OK when
 * the transaction committed (each result says what became of its
 * outcome); Q_ERR when nothing was recorded (an outcome that is not one,
 * or the store failed). */
int queue_mail_done_batch(struct queue *q, struct q_mail_outcome *o,
                          size_t n, char *err, size_t errlen);

/* One outcome: queue_mail_done_batch with n 1; returns Q_OK, Q_NOTFOUND
 * (no longer sending) or Q_ERR. */
int queue_mail_done(struct queue *q, int64_t delivery_id, int state,
                    int64_t next_ms, const char *error,
                    char *err, size_t errlen);

/* Start-up: mail deliveries left sending (a crash or kill in flight)
 * become deferred and due now; *n says how many. */
int queue_mail_recover(struct queue *q, int64_t now_ms, int *n,
                       char *err, size_t errlen);

/* When the next mail delivery is due: *next_ms = the smallest
 * next_attempt_ms of waiting/deferred mail deliveries, 0 if none. */
int queue_mail_next_due(struct queue *q, int64_t *next_ms,
                        char *err, size_t errlen);

/* ---- operator repair ------------------------------------------------------
 * Each acts on the deliveries of one tracking number (partner NULL) or of
 * one partner (tracking NULL), in one transaction, recording history
 * with note "operator"; *n says how many deliveries changed (0 is not an
 * error).  Q_NOTFOUND if the tracking number does not exist. */

/* Mail deliveries waiting, deferred or dead: due now (dead ones come back
 * as deferred with attempts kept).  Held ones are left alone. */
int queue_op_retry(struct queue *q, const char *tracking, const char *partner,
                   int64_t now_ms, int *n, char *err, size_t errlen);

/* Any delivery not final (waiting, sending, deferred): held.  A held pull
 * delivery is not offered to the partner; a held mail one is not sent. */
int queue_op_hold(struct queue *q, const char *tracking, const char *partner,
                  int *n, char *err, size_t errlen);

/* Held deliveries: back to waiting (mail: due now). */
int queue_op_release(struct queue *q, const char *tracking,
                     const char *partner, int64_t now_ms, int *n,
                     char *err, size_t errlen);

/* Delete the dead or held deliveries of tracking (and their history);
 * others are left.  The certificate stays. */
int queue_op_purge(struct queue *q, const char *tracking, int *n,
                   char *err, size_t errlen);

/* benchmark hook */
/* Hand-ins and acknowledgements of all the writable handles on one store
 * in this process are written by group commit: one transaction and one
 * fsync for what arrived while the previous one was being written.
 * *handins = hand-ins answered Q_OK so far, *commits = commits that
 * carried at least one of them (process-wide for q's store; both 0 for a
 * read-only handle).  *handins / *commits is hand-ins per fsync. */
void queue_stats(struct queue *q, uint64_t *handins, uint64_t *commits);

/* test hook */
/* The EXPLAIN QUERY PLAN detail lines (one per line) of the exact SQL the
 * store runs for which: "pull", "headers", "lookup" (latest version of
 * issuer + number), "duplicate", "status", "track", "ack", "pull_one",
 * "show", "mail_claim" (the due scan), "mail_next".  Q_OK, or Q_ERR
 * (unknown name, plan too long). */
int queue_explain(struct queue *q, const char *which, char *plan,
                  size_t planlen);

#endif
