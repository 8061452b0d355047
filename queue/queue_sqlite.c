/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * NAME
 *      queue_sqlite.c - the certificate store and delivery queue in SQLite
 *
 * SUMMARY
 *      Implements queue.h on one SQLite file in WAL mode.  One struct queue
 *      wraps one connection; a connection belongs to one thread.  Hand-ins
 *      and acknowledgements of all the writable handles on one file in a
 *      process are written by group commit (see "group commit" below):
 *      many requests, one transaction, one fsync.
 *
 * DESCRIPTION
 *      Tables (schema version 2):
 *
 *        schema_version  one row: the version of this layout.
 *        certificate     one handed-in version of a certificate: issuer,
 *                        destination, number, version, type, status, the
 *                        content bytes as handed in, their SHA-256, the
 *                        partner that handed it in, the time, and the
 *                        tracking number of the hand-in.
 *        delivery        certificate x addressee partner x channel, with
 *                        the state machine below.
 *        event           every state a delivery entered, creation included.
 *        delivery_count  deliveries per partner x channel x state, kept by
 *                        triggers on delivery in the same transaction, so
 *                        that the operator's status costs the number of
 *                        such groups, not the number of deliveries (v2;
 *                        a version 1 store is upgraded when opened for
 *                        writing, and read as before when read-only).
 *
 *      Delivery states (enum q_state) and who moves them:
 *
 *        (none)   -> waiting                  [queue_handin]
 *        waiting  -> delivered | delivered_warnings | not_readable | failed
 *                                             [queue_ack, pull channel]
 *        waiting  -> sending -> delivered | deferred -> sending ... | dead
 *                                             [mail worker, smtp channel]
 *        sending  -> deferred                 [queue_mail_recover]
 *        waiting | sending | deferred -> held [queue_op_hold]
 *        held     -> waiting                  [queue_op_release]
 *        dead     -> deferred                 [queue_op_retry]
 *        dead | held -> (deleted)             [queue_op_purge]
 *
 *      next_attempt_ms: pull deliveries 0; mail deliveries waiting or
 *      deferred: when due; sending: when the claim's lease ends; held and
 *      final: 0.  Due mail is claimed smallest next_attempt_ms first,
 *      read in that order from the delivery_due index, in batches of one
 *      caller-defined group (a relay) per transaction; their outcomes are
 *      recorded in one transaction too.
 *
 *      Invariants: a final state is never left by queue_ack (a second
 *      acknowledgement is a no-op); every state change writes one event row
 *      in the same transaction; a pull marks pulled_ms/pull_count but does
 *      not change the state.
 *
 *      Oldest first means in order of certificate id: ids are handed out
 *      in increasing order and certificate rows are never deleted by this
 *      module (queue_op_purge deletes deliveries and their events only).
 *
 * DIAGNOSTICS
 *      Q_ERR with a message in err naming the step that failed.  Transient
 *      failures (busy, locked, disk full, I/O, cannot open, out of memory)
 *      are remembered for queue_err_transient().  Messages never contain
 *      certificate content.
 *
 * SECURITY
 *      Every call a partner's request can reach puts the partner id in the
 *      WHERE clause of its queries; "not yours" answers exactly like "does
 *      not exist".  Callbacks must not call back into the same handle.
 */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <openssl/evp.h>
#include <openssl/rand.h>
#include <sqlite3.h>

#include "queue.h"

#define Q_SCHEMA_VERSION   2
#define CLAIM_TRIES        64   /* picks lost to other claimers */
#define CLAIM_LOOKAHEAD  1024   /* rows of other groups a batch looks past */
#define Q_BUSY_TIMEOUT_MS  10000
#define Q_SHA256_LEN       32

/* The SQL below spells channels and states as numbers; keep them honest. */
_Static_assert(Q_CH_PULL == 1 && Q_CH_SMTP == 2, "channel numbers in SQL");
_Static_assert(Q_WAITING == 0 && Q_SENDING == 1 && Q_DEFERRED == 2 &&
               Q_DELIVERED == 3 && Q_DELIVERED_WARNINGS == 4 &&
               Q_NOT_READABLE == 5 && Q_FAILED == 6 && Q_DEAD == 7 &&
               Q_HELD == 8, "state numbers in SQL");

static const char *const schema_sql =
    "CREATE TABLE certificate ("
    " id INTEGER PRIMARY KEY,"
    " tracking TEXT NOT NULL UNIQUE,"
    " issuer TEXT NOT NULL,"
    " dest TEXT NOT NULL,"
    " number TEXT NOT NULL,"
    " version INTEGER NOT NULL,"
    " type INTEGER NOT NULL,"
    " status INTEGER NOT NULL,"
    " sender TEXT,"
    " content BLOB NOT NULL,"
    " sha256 BLOB NOT NULL,"
    " received_ms INTEGER NOT NULL,"
    " UNIQUE (issuer, number, version));"
    "CREATE TABLE delivery ("
    " id INTEGER PRIMARY KEY,"
    " cert_id INTEGER NOT NULL REFERENCES certificate(id),"
    " partner TEXT NOT NULL,"
    " channel INTEGER NOT NULL,"
    " state INTEGER NOT NULL,"
    " attempts INTEGER NOT NULL DEFAULT 0,"
    " created_ms INTEGER NOT NULL,"
    " updated_ms INTEGER NOT NULL,"
    " next_attempt_ms INTEGER NOT NULL DEFAULT 0,"
    " pulled_ms INTEGER NOT NULL DEFAULT 0,"
    " pull_count INTEGER NOT NULL DEFAULT 0,"
    " last_error TEXT NOT NULL DEFAULT '',"
    " UNIQUE (cert_id, partner, channel));"
    "CREATE TABLE event ("
    " id INTEGER PRIMARY KEY,"
    " delivery_id INTEGER NOT NULL REFERENCES delivery(id),"
    " at_ms INTEGER NOT NULL,"
    " state INTEGER NOT NULL,"
    " note TEXT NOT NULL DEFAULT '');"
    /* Waiting pull deliveries per partner in certificate order; partial
     * (only the working set) and covering for the headers/pull scan. */
    "CREATE INDEX delivery_pull ON delivery"
    " (partner, channel, state, cert_id, last_error)"
    " WHERE channel = 1 AND state = 0;"
    /* Per-partner status; covering for queue_op_status. */
    "CREATE INDEX delivery_status ON delivery"
    " (partner, channel, state, created_ms, next_attempt_ms);"
    /* Due mail deliveries. */
    "CREATE INDEX delivery_due ON delivery (channel, state, next_attempt_ms);"
    /* (issuer, number) is served by UNIQUE (issuer, number, version). */
    "CREATE INDEX certificate_digest ON certificate"
    " (issuer, number, sha256, version);"
    "CREATE INDEX event_delivery ON event (delivery_id, id);";

/* Version 2: maintained counts (see DESCRIPTION).  A delivery's partner
 * and channel never change, but the update trigger does not rely on it. */
static const char *const counts_sql =
    "CREATE TABLE delivery_count ("
    " partner TEXT NOT NULL,"
    " channel INTEGER NOT NULL,"
    " state INTEGER NOT NULL,"
    " n INTEGER NOT NULL,"
    " PRIMARY KEY (partner, channel, state)) WITHOUT ROWID;"
    "CREATE TRIGGER delivery_count_ins AFTER INSERT ON delivery BEGIN"
    " INSERT INTO delivery_count (partner, channel, state, n)"
    "  VALUES (NEW.partner, NEW.channel, NEW.state, 1)"
    "  ON CONFLICT (partner, channel, state) DO UPDATE SET n = n + 1;"
    " END;"
    "CREATE TRIGGER delivery_count_upd"
    " AFTER UPDATE OF partner, channel, state ON delivery"
    " WHEN OLD.state IS NOT NEW.state OR OLD.partner IS NOT NEW.partner"
    "  OR OLD.channel IS NOT NEW.channel BEGIN"
    " UPDATE delivery_count SET n = n - 1 WHERE partner = OLD.partner"
    "  AND channel = OLD.channel AND state = OLD.state;"
    " INSERT INTO delivery_count (partner, channel, state, n)"
    "  VALUES (NEW.partner, NEW.channel, NEW.state, 1)"
    "  ON CONFLICT (partner, channel, state) DO UPDATE SET n = n + 1;"
    " END;"
    "CREATE TRIGGER delivery_count_del AFTER DELETE ON delivery BEGIN"
    " UPDATE delivery_count SET n = n - 1 WHERE partner = OLD.partner"
    "  AND channel = OLD.channel AND state = OLD.state;"
    " END;";

/* Groups whose maintained count is not the deliveries' (0: all agree). */
#define COUNTS_DIFFER_SQL                                                   \
    "SELECT (SELECT count(*) FROM (SELECT partner, channel, state, count(*)" \
    " FROM delivery GROUP BY partner, channel, state EXCEPT SELECT partner," \
    " channel, state, n FROM delivery_count WHERE n > 0))"                  \
    " + (SELECT count(*) FROM (SELECT partner, channel, state, n"           \
    " FROM delivery_count WHERE n > 0 EXCEPT SELECT partner, channel,"      \
    " state, count(*) FROM delivery GROUP BY partner, channel, state))"     \
    " + (SELECT count(*) FROM delivery_count WHERE n < 0)"

/* Version 1 -> 2: the counts of what is there. */
static const char *const upgrade_v2_sql =
    "INSERT INTO delivery_count (partner, channel, state, n)"
    " SELECT partner, channel, state, count(*) FROM delivery"
    " GROUP BY partner, channel, state;"
    "UPDATE schema_version SET version = 2;";

/* Rank of a state for the sender's summary: least advanced first. */
#define RANK(col)                                                         \
    "CASE " col " WHEN 0 THEN 0 WHEN 1 THEN 0 WHEN 2 THEN 0 WHEN 8 THEN 0" \
    " WHEN 6 THEN 1 WHEN 7 THEN 1 WHEN 5 THEN 2 WHEN 4 THEN 3 ELSE 4 END"

/* Columns 0..11 of every envelope row. */
#define ENV_COLS                                                          \
    "c.tracking, c.issuer, c.dest, c.type, c.status, c.version,"          \
    " c.number, c.sender, c.received_ms, c.sha256, d.state, d.last_error"
#define ENV_NCOLS 12

/* Columns 0..16 of every delivery row. */
#define DEL_COLS                                                          \
    "c.tracking, d.partner, d.channel, d.state, d.attempts,"              \
    " d.created_ms, d.updated_ms, d.next_attempt_ms, d.pulled_ms,"        \
    " d.pull_count, d.last_error, c.issuer, c.dest, c.number, c.type,"    \
    " c.status, c.version"

/* The deliveries an operator verb acts on: one certificate's or one
 * partner's (the other parameter is NULL). */
#define OP_WHERE " WHERE (cert_id = ?1 OR partner = ?2)"
/* retry: mail dead, or waiting/deferred but not yet due */
#define RETRY_WHERE                                                       \
    OP_WHERE " AND channel = 2"                                           \
    " AND (state = 7 OR (state IN (0, 2) AND next_attempt_ms > ?4))"
#define HOLD_WHERE OP_WHERE " AND state IN (0, 1, 2)"
#define RELEASE_WHERE OP_WHERE " AND state = 8"

enum stmt_id {
    ST_BEGIN,
    ST_COMMIT,
    ST_ROLLBACK,
    ST_SP_BEGIN,
    ST_SP_RELEASE,
    ST_SP_ROLLBACK,
    ST_DUP,
    ST_MAXVER,
    ST_INS_CERT,
    ST_INS_DEL,
    ST_INS_EVENT,
    ST_HEADERS,
    ST_PULL,
    ST_MARK,
    ST_PULL_ONE,
    ST_ACK_FIND,
    ST_ACK_SET,
    ST_TRACK,
    ST_STATUS,
    ST_STATUS_V1,
    ST_SHOW_CERT,
    ST_SHOW_DEL,
    ST_SHOW_EV,
    ST_MAIL_DUE,
    ST_MAIL_TAKE,
    ST_MAIL_GET,
    ST_MAIL_DONE,
    ST_MAIL_NEXT,
    ST_RECOVER_EV,
    ST_RECOVER,
    ST_CERT_ID,
    ST_RETRY_EV,
    ST_RETRY,
    ST_HOLD_EV,
    ST_HOLD,
    ST_RELEASE_EV,
    ST_RELEASE,
    ST_PURGE_EV,
    ST_PURGE,
    ST_COUNT
};

static const char *const stmt_sql[ST_COUNT] = {
    [ST_BEGIN] = "BEGIN IMMEDIATE",
    [ST_COMMIT] = "COMMIT",
    [ST_ROLLBACK] = "ROLLBACK",
    [ST_SP_BEGIN] = "SAVEPOINT request",
    [ST_SP_RELEASE] = "RELEASE request",
    [ST_SP_ROLLBACK] = "ROLLBACK TO request",
    [ST_DUP] =
        "SELECT tracking FROM certificate"
        " WHERE issuer = ?1 AND number = ?2 AND sha256 = ?3"
        " ORDER BY version LIMIT 1",
    [ST_MAXVER] =
        "SELECT max(version) FROM certificate"
        " WHERE issuer = ?1 AND number = ?2",
    [ST_INS_CERT] =
        "INSERT INTO certificate (tracking, issuer, dest, number, version,"
        " type, status, sender, content, sha256, received_ms)"
        " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
    [ST_INS_DEL] =
        "INSERT INTO delivery (cert_id, partner, channel, state, attempts,"
        " created_ms, updated_ms, next_attempt_ms, pulled_ms, pull_count,"
        " last_error) VALUES (?1, ?2, ?3, 0, 0, ?4, ?4, ?5, 0, 0, '')"
        " ON CONFLICT DO NOTHING",
    [ST_INS_EVENT] =
        "INSERT INTO event (delivery_id, at_ms, state, note)"
        " VALUES (?1, ?2, ?3, ?4)",
    [ST_HEADERS] =
        "SELECT " ENV_COLS ", d.id"
        " FROM delivery d CROSS JOIN certificate c ON c.id = d.cert_id"
        " WHERE d.partner = ?1 AND d.channel = 1 AND d.state = 0"
        " ORDER BY d.cert_id LIMIT ?2",
    [ST_PULL] =
        "SELECT " ENV_COLS ", d.id, c.content"
        " FROM delivery d CROSS JOIN certificate c ON c.id = d.cert_id"
        " WHERE d.partner = ?1 AND d.channel = 1 AND d.state = 0"
        " ORDER BY d.cert_id LIMIT ?2",
    [ST_MARK] =
        "UPDATE delivery SET pulled_ms = ?1, pull_count = pull_count + 1"
        " WHERE id = ?2 AND partner = ?3 AND channel = 1",
    /* A delivery the operator holds is neither served nor acknowledged. */
    [ST_PULL_ONE] =
        "SELECT " ENV_COLS ", d.id, c.content"
        " FROM certificate c JOIN delivery d ON d.cert_id = c.id"
        " WHERE c.tracking = ?1 AND d.partner = ?2 AND d.channel = 1"
        " AND d.state <> 8",
    [ST_ACK_FIND] =
        "SELECT d.id, d.state"
        " FROM certificate c JOIN delivery d ON d.cert_id = c.id"
        " WHERE c.tracking = ?1 AND d.partner = ?2 AND d.channel = 1"
        " AND d.state <> 8",
    [ST_ACK_SET] =
        "UPDATE delivery SET state = ?1, updated_ms = ?2, last_error = ?3"
        " WHERE id = ?4 AND partner = ?5 AND channel = 1",
    /* Own deliveries first (pull before mail); for the sender alone, the
     * least advanced of all, with the addressee's acknowledgement text
     * but never a relay's reply (mailboxes, hosts). */
    [ST_TRACK] =
        "SELECT c.tracking, c.issuer, c.dest, c.type, c.status, c.version,"
        " c.number, c.sender, c.received_ms, c.sha256, d.state,"
        " CASE WHEN d.partner = ?2 OR d.channel = 1 THEN d.last_error"
        " ELSE '' END"
        " FROM certificate c JOIN delivery d ON d.cert_id = c.id"
        " WHERE c.tracking = ?1 AND (d.partner = ?2 OR c.sender = ?2)"
        " ORDER BY d.partner = ?2 DESC,"
        " CASE WHEN d.partner = ?2 THEN d.channel ELSE 0 END,"
        " " RANK("d.state") ", d.state, d.id LIMIT 1",
    /* One row per group from the counts; the oldest by delivery_status
     * (a seek); the next attempt only for waiting/deferred mail, whose
     * group is the backlog, not the archive. */
    [ST_STATUS] =
        "SELECT k.partner, k.channel, k.state, k.n,"
        " (SELECT min(d.created_ms) FROM delivery d WHERE d.partner = k.partner"
        "  AND d.channel = k.channel AND d.state = k.state),"
        " CASE WHEN k.channel = 2 AND k.state IN (0, 2) THEN"
        "  (SELECT min(d.next_attempt_ms) FROM delivery d"
        "   WHERE d.partner = k.partner AND d.channel = k.channel"
        "   AND d.state = k.state AND d.next_attempt_ms > 0) END"
        " FROM delivery_count k WHERE k.n > 0"
        " ORDER BY k.partner, k.channel, k.state",
    /* A version 1 store opened read-only: count them all. */
    [ST_STATUS_V1] =
        "SELECT partner, channel, state, count(*), min(created_ms),"
        " min(CASE WHEN next_attempt_ms > 0 THEN next_attempt_ms END)"
        " FROM delivery GROUP BY partner, channel, state"
        " ORDER BY partner, channel, state",
    [ST_SHOW_CERT] =
        "SELECT " ENV_COLS ", c.id, c.content"
        " FROM certificate c LEFT JOIN delivery d ON d.id ="
        " (SELECT d2.id FROM delivery d2 WHERE d2.cert_id = c.id"
        "  ORDER BY " RANK("d2.state") ", d2.state, d2.id LIMIT 1)"
        " WHERE c.tracking = ?1",
    [ST_SHOW_DEL] =
        "SELECT " DEL_COLS
        " FROM delivery d JOIN certificate c ON c.id = d.cert_id"
        " WHERE d.cert_id = ?1 ORDER BY d.id",
    [ST_SHOW_EV] =
        "SELECT d.partner, d.channel, e.at_ms, e.state, e.note"
        " FROM delivery d JOIN event e ON e.delivery_id = d.id"
        " WHERE d.cert_id = ?1 ORDER BY e.id",
    /* Due mail, oldest due first: one ordered range of delivery_due per
     * state, merged, so no sort and no scan past the first taker. */
    [ST_MAIL_DUE] =
        "SELECT next_attempt_ms, id, partner FROM delivery"
        " WHERE channel = 2 AND state = 0 AND next_attempt_ms <= ?1"
        " UNION ALL"
        " SELECT next_attempt_ms, id, partner FROM delivery"
        " WHERE channel = 2 AND state = 2 AND next_attempt_ms <= ?1"
        " ORDER BY 1, 2",
    [ST_MAIL_TAKE] =
        "UPDATE delivery SET state = 1, attempts = attempts + 1,"
        " next_attempt_ms = ?1, updated_ms = ?2"
        " WHERE id = ?3 AND channel = 2 AND state IN (0, 2)"
        " AND next_attempt_ms <= ?4"
        " RETURNING attempts",
    [ST_MAIL_GET] =
        "SELECT c.tracking, d.partner, d.attempts, d.created_ms, c.issuer,"
        " c.dest, c.type, c.status, c.version, c.number, c.sender,"
        " c.received_ms, c.sha256, c.content"
        " FROM delivery d JOIN certificate c ON c.id = d.cert_id"
        " WHERE d.id = ?1",
    [ST_MAIL_DONE] =
        "UPDATE delivery SET state = ?1, next_attempt_ms = ?2,"
        " last_error = ?3, updated_ms = ?4"
        " WHERE id = ?5 AND channel = 2 AND state = 1",
    [ST_MAIL_NEXT] =
        "SELECT next_attempt_ms FROM delivery WHERE channel = 2 AND state = 0"
        " UNION ALL"
        " SELECT next_attempt_ms FROM delivery WHERE channel = 2 AND state = 2"
        " ORDER BY 1 LIMIT 1",
    /* The set-based statements below share their parameters: ?1 the
     * certificate id (or NULL), ?2 the partner (or NULL), ?3 the time of
     * the record, ?4 the scheduling time.  Each *_EV statement writes the
     * events of exactly the rows its partner statement then changes. */
    [ST_RECOVER_EV] =
        "INSERT INTO event (delivery_id, at_ms, state, note)"
        " SELECT id, ?3, 2, 'interrupted' FROM delivery"
        " WHERE channel = 2 AND state = 1 ORDER BY id",
    [ST_RECOVER] =
        "UPDATE delivery SET state = 2, next_attempt_ms = ?4, updated_ms = ?3"
        " WHERE channel = 2 AND state = 1",
    [ST_CERT_ID] =
        "SELECT id FROM certificate WHERE tracking = ?1",
    [ST_RETRY_EV] =
        "INSERT INTO event (delivery_id, at_ms, state, note)"
        " SELECT id, ?3, CASE state WHEN 7 THEN 2 ELSE state END, 'operator'"
        " FROM delivery" RETRY_WHERE " ORDER BY id",
    [ST_RETRY] =
        "UPDATE delivery SET state = CASE state WHEN 7 THEN 2 ELSE state END,"
        " next_attempt_ms = ?4, updated_ms = ?3" RETRY_WHERE,
    [ST_HOLD_EV] =
        "INSERT INTO event (delivery_id, at_ms, state, note)"
        " SELECT id, ?3, 8, 'operator' FROM delivery" HOLD_WHERE
        " ORDER BY id",
    [ST_HOLD] =
        "UPDATE delivery SET state = 8, next_attempt_ms = 0, updated_ms = ?3"
        HOLD_WHERE,
    [ST_RELEASE_EV] =
        "INSERT INTO event (delivery_id, at_ms, state, note)"
        " SELECT id, ?3, 0, 'operator' FROM delivery" RELEASE_WHERE
        " ORDER BY id",
    [ST_RELEASE] =
        "UPDATE delivery SET state = 0,"
        " next_attempt_ms = CASE channel WHEN 2 THEN ?4 ELSE 0 END,"
        " updated_ms = ?3" RELEASE_WHERE,
    [ST_PURGE_EV] =
        "DELETE FROM event WHERE delivery_id IN"
        " (SELECT id FROM delivery WHERE cert_id = ?1 AND state IN (7, 8))",
    [ST_PURGE] =
        "DELETE FROM delivery WHERE cert_id = ?1 AND state IN (7, 8)",
};

struct committer;

struct queue {
    sqlite3 *db;
    int readonly;
    int transient;                 /* last Q_ERR was transient */
    int sync;                      /* synchronous=FULL (1) or OFF (0) */
    int version;                   /* schema version of the file */
    sqlite3_stmt *st[ST_COUNT];    /* prepared on first use */
    struct committer *gc;          /* group committer; NULL if read-only */
    pthread_cond_t gc_cv;          /* this handle's request is answered or
                                      it is to lead; valid while gc set */
};

/* ---- names ------------------------------------------------------------ */

static const char *const state_names[Q_NSTATES] = {
    [Q_WAITING] = "waiting",
    [Q_SENDING] = "sending",
    [Q_DEFERRED] = "deferred",
    [Q_DELIVERED] = "delivered",
    [Q_DELIVERED_WARNINGS] = "delivered_warnings",
    [Q_NOT_READABLE] = "not_readable",
    [Q_FAILED] = "failed",
    [Q_DEAD] = "dead",
    [Q_HELD] = "held",
};

const char *
q_state_name(int state)
{
    if (state < 0 || state >= Q_NSTATES)
        return "?";
    return state_names[state];
}

int
q_state_parse(const char *name)
{
    int i;

    if (name == NULL)
        return -1;
    for (i = 0; i < Q_NSTATES; i++)
        if (strcmp(name, state_names[i]) == 0)
            return i;
    return -1;
}

const char *
q_channel_name(int channel)
{
    switch (channel) {
    case Q_CH_PULL:
        return "pull";
    case Q_CH_SMTP:
        return "smtp";
    default:
        return "?";
    }
}

int
q_channel_parse(const char *name)
{
    if (name == NULL)
        return -1;
    if (strcmp(name, "pull") == 0)
        return Q_CH_PULL;
    if (strcmp(name, "smtp") == 0)
        return Q_CH_SMTP;
    return -1;
}

int
q_state_final(int state)
{
    return state >= Q_DELIVERED && state <= Q_DEAD;
}

/* ---- errors ----------------------------------------------------------- */

static int
rc_transient(int rc)
{
    switch (rc & 0xff) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
    case SQLITE_FULL:
    case SQLITE_IOERR:
    case SQLITE_CANTOPEN:
    case SQLITE_NOMEM:
    case SQLITE_PROTOCOL:
        return 1;
    default:
        return 0;
    }
}

static void qerr_set(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
qerr_set(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;

    if (err == NULL || errlen == 0)
        return;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* q_fail - an SQLite call failed during step; returns Q_ERR */
static int
q_fail(struct queue *q, int rc, const char *step, char *err, size_t errlen)
{
    const char *msg = q->db != NULL ? sqlite3_errmsg(q->db) : "";

    q->transient = rc_transient(rc);
    if (msg == NULL || *msg == '\0' || strcmp(msg, "not an error") == 0)
        msg = sqlite3_errstr(rc);
    qerr_set(err, errlen, "store: %s: %s%s", step, msg,
             q->transient ? " (temporary; try again later)" : "");
    return Q_ERR;
}

/* q_failx - a failure of ours, not SQLite's (never transient) */
static int q_failx(struct queue *q, char *err, size_t errlen,
                   const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static int
q_failx(struct queue *q, char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;

    if (q != NULL)
        q->transient = 0;
    if (err != NULL && errlen > 0) {
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return Q_ERR;
}

int
queue_err_transient(const struct queue *q)
{
    return q != NULL && q->transient;
}

/* ---- helpers ---------------------------------------------------------- */

static int64_t
now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static const char *
col_text(sqlite3_stmt *st, int i)
{
    const unsigned char *s = sqlite3_column_text(st, i);

    return s != NULL ? (const char *)s : "";
}

/* stmt_get - the cached statement id, prepared on first use */
static int
stmt_get(struct queue *q, enum stmt_id id, sqlite3_stmt **out,
         char *err, size_t errlen)
{
    int rc;

    if (q->st[id] == NULL) {
        rc = sqlite3_prepare_v3(q->db, stmt_sql[id], -1,
                                SQLITE_PREPARE_PERSISTENT, &q->st[id], NULL);
        if (rc != SQLITE_OK) {
            q->st[id] = NULL;
            return q_fail(q, rc, "prepare", err, errlen);
        }
    }
    *out = q->st[id];
    return Q_OK;
}

static void
stmt_done(sqlite3_stmt *st)
{
    if (st != NULL) {
        sqlite3_reset(st);
        sqlite3_clear_bindings(st);
    }
}

/* run - prepare (cached) and step a statement that returns no rows */
static int
run(struct queue *q, enum stmt_id id, const char *step, char *err,
    size_t errlen)
{
    sqlite3_stmt *st = NULL;
    int result = Q_ERR, rc;

    if (stmt_get(q, id, &st, err, errlen) != Q_OK)
        goto out;
    rc = sqlite3_step(st);
    if (rc != SQLITE_DONE) {
        q_fail(q, rc, step, err, errlen);
        goto out;
    }
    result = Q_OK;
out:
    stmt_done(st);
    return result;
}

static int
tx_begin(struct queue *q, char *err, size_t errlen)
{
    if (q->readonly)
        return q_failx(q, err, errlen,
                       "store: opened read-only; cannot change it");
    return run(q, ST_BEGIN, "begin transaction", err, errlen);
}

static int
tx_commit(struct queue *q, char *err, size_t errlen)
{
    return run(q, ST_COMMIT, "commit", err, errlen);
}

/* tx_rollback - undo an open transaction, keeping the first error */
static void
tx_rollback(struct queue *q)
{
    if (!sqlite3_get_autocommit(q->db))
        run(q, ST_ROLLBACK, "rollback", NULL, 0);
}

/* env_fill - columns 0..ENV_NCOLS-1 of st into e (no content) */
static int
env_fill(struct queue *q, sqlite3_stmt *st, struct q_envelope *e,
         char *err, size_t errlen)
{
    memset(e, 0, sizeof(*e));
    e->tracking = col_text(st, 0);
    e->from = col_text(st, 1);
    e->to = col_text(st, 2);
    e->type = sqlite3_column_int(st, 3);
    e->status = sqlite3_column_int(st, 4);
    e->version = sqlite3_column_int(st, 5);
    e->number = col_text(st, 6);
    e->sender = col_text(st, 7);
    e->received_ms = sqlite3_column_int64(st, 8);
    e->sha256 = sqlite3_column_blob(st, 9);
    if (e->sha256 == NULL || sqlite3_column_bytes(st, 9) != Q_SHA256_LEN)
        return q_failx(q, err, errlen, "store: certificate %s has a damaged "
                       "digest; run the integrity check", e->tracking);
    e->state = sqlite3_column_int(st, 10);
    e->last_error = col_text(st, 11);
    return Q_OK;
}

/* env_content - column i of st as the envelope's content */
static void
env_content(sqlite3_stmt *st, int i, struct q_envelope *e)
{
    e->content = sqlite3_column_blob(st, i);
    e->content_len = (size_t)sqlite3_column_bytes(st, i);
    if (e->content == NULL) {           /* zero-length blob */
        e->content = (const unsigned char *)"";
        e->content_len = 0;
    }
}

static void
del_fill(sqlite3_stmt *st, struct q_delivery *d)
{
    memset(d, 0, sizeof(*d));
    d->tracking = col_text(st, 0);
    d->partner = col_text(st, 1);
    d->channel = sqlite3_column_int(st, 2);
    d->state = sqlite3_column_int(st, 3);
    d->attempts = sqlite3_column_int(st, 4);
    d->created_ms = sqlite3_column_int64(st, 5);
    d->updated_ms = sqlite3_column_int64(st, 6);
    d->next_attempt_ms = sqlite3_column_int64(st, 7);
    d->pulled_ms = sqlite3_column_int64(st, 8);
    d->pull_count = sqlite3_column_int(st, 9);
    d->last_error = col_text(st, 10);
    d->from = col_text(st, 11);
    d->to = col_text(st, 12);
    d->number = col_text(st, 13);
    d->type = sqlite3_column_int(st, 14);
    d->status = sqlite3_column_int(st, 15);
    d->version = sqlite3_column_int(st, 16);
}

/* text_cut - length of s cut to at most max bytes on a UTF-8 boundary */
static int
text_cut(const char *s, size_t max)
{
    size_t n = strlen(s);

    if (n > max) {
        n = max;
        while (n > 0 && ((unsigned char)s[n] & 0xc0) == 0x80)
            n--;
    }
    return (int)n;
}

static int
partner_ok(const char *p)
{
    return p != NULL && *p != '\0' && strlen(p) < Q_PARTNER_MAX;
}

/* ---- open / close ----------------------------------------------------- */

static int gc_attach(struct queue *q, const char *path, char *err,
                     size_t errlen);
static void gc_detach(struct queue *q);

static int
exec_sql(struct queue *q, const char *sql, const char *step, char *err,
         size_t errlen)
{
    int rc = sqlite3_exec(q->db, sql, NULL, NULL, NULL);

    if (rc != SQLITE_OK)
        return q_fail(q, rc, step, err, errlen);
    return Q_OK;
}

/* one_int - the first column of the first row of sql (*found = 0 if none) */
static int
one_int(struct queue *q, const char *sql, const char *step, int64_t *val,
        int *found, char *err, size_t errlen)
{
    sqlite3_stmt *st = NULL;
    int result = Q_ERR, rc;

    *found = 0;
    *val = 0;
    rc = sqlite3_prepare_v2(q->db, sql, -1, &st, NULL);
    if (rc != SQLITE_OK) {
        q_fail(q, rc, step, err, errlen);
        goto out;
    }
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        if (sqlite3_column_type(st, 0) != SQLITE_NULL) {
            *found = 1;
            *val = sqlite3_column_int64(st, 0);
        }
    } else if (rc != SQLITE_DONE) {
        q_fail(q, rc, step, err, errlen);
        goto out;
    }
    result = Q_OK;
out:
    sqlite3_finalize(st);
    return result;
}

/* schema_check - create the schema if the file is new, else check it */
static int
schema_check(struct queue *q, const char *path, char *err, size_t errlen)
{
    int64_t n = 0, version = 0;
    int found, began = 0, result = Q_ERR;

    if (!q->readonly) {
        if (tx_begin(q, err, errlen) != Q_OK)
            goto out;
        began = 1;
    }
    if (one_int(q, "SELECT count(*) FROM sqlite_master"
                " WHERE type = 'table' AND name = 'schema_version'",
                "read schema", &n, &found, err, errlen) != Q_OK)
        goto out;
    if (n == 0) {
        if (one_int(q, "SELECT count(*) FROM sqlite_master",
                    "read schema", &n, &found, err, errlen) != Q_OK)
            goto out;
        if (n != 0 || q->readonly) {
            q_failx(q, err, errlen, "store %s is not an ecert-gateway store "
                    "(no schema_version table)", path);
            goto out;
        }
        if (exec_sql(q, schema_sql, "create schema", err, errlen) != Q_OK ||
            exec_sql(q, counts_sql, "create schema", err, errlen) != Q_OK ||
            exec_sql(q, "CREATE TABLE schema_version"
                     " (version INTEGER NOT NULL);"
                     "INSERT INTO schema_version (version) VALUES (2);",
                     "create schema", err, errlen) != Q_OK)
            goto out;
        version = Q_SCHEMA_VERSION;
    } else {
        if (one_int(q, "SELECT max(version) FROM schema_version",
                    "read schema version", &version, &found, err,
                    errlen) != Q_OK)
            goto out;
        if (!found || version < 1) {
            q_failx(q, err, errlen, "store %s has no valid schema version",
                    path);
            goto out;
        }
        if (version > Q_SCHEMA_VERSION) {
            q_failx(q, err, errlen, "store %s has schema version %lld but "
                    "this program knows only version %d: use a newer "
                    "ecert-gateway", path, (long long)version,
                    Q_SCHEMA_VERSION);
            goto out;
        }
        if (version == 1 && !q->readonly) {
            if (exec_sql(q, counts_sql, "upgrade store to version 2", err,
                         errlen) != Q_OK ||
                exec_sql(q, upgrade_v2_sql, "upgrade store to version 2",
                         err, errlen) != Q_OK)
                goto out;
            version = 2;
        }
    }
    q->version = (int)version;
    if (began) {
        began = 0;
        if (tx_commit(q, err, errlen) != Q_OK)
            goto out;
    }
    result = Q_OK;
out:
    if (began)
        tx_rollback(q);
    return result;
}

/* pragma_wal - switch to WAL and check that it took */
static int
pragma_wal(struct queue *q, char *err, size_t errlen)
{
    sqlite3_stmt *st = NULL;
    int result = Q_ERR, rc;

    rc = sqlite3_prepare_v2(q->db, "PRAGMA journal_mode=WAL", -1, &st, NULL);
    if (rc != SQLITE_OK) {
        q_fail(q, rc, "set WAL mode", err, errlen);
        goto out;
    }
    rc = sqlite3_step(st);
    if (rc != SQLITE_ROW) {
        q_fail(q, rc, "set WAL mode", err, errlen);
        goto out;
    }
    if (strcmp(col_text(st, 0), "wal") != 0) {
        q_failx(q, err, errlen, "store: cannot use WAL mode (journal mode "
                "stays %s)", col_text(st, 0));
        goto out;
    }
    result = Q_OK;
out:
    sqlite3_finalize(st);
    return result;
}

int
queue_open(struct queue **qp, const char *path, int readonly,
           char *err, size_t errlen)
{
    struct queue *q = NULL;
    struct stat sb;
    int result = Q_ERR, rc, flags;

    *qp = NULL;
    if (path == NULL || *path == '\0') {
        q_failx(NULL, err, errlen, "store: no path given");
        goto out;
    }
    if (readonly && stat(path, &sb) != 0) {
        if (errno == ENOENT)
            q_failx(NULL, err, errlen, "store %s does not exist", path);
        else
            q_failx(NULL, err, errlen, "store %s: %s", path,
                    strerror(errno));
        goto out;
    }
    q = calloc(1, sizeof(*q));
    if (q == NULL) {
        q_failx(NULL, err, errlen, "store: out of memory");
        goto out;
    }
    q->readonly = readonly != 0;
    q->sync = 1;
    flags = SQLITE_OPEN_NOMUTEX | (q->readonly ? SQLITE_OPEN_READONLY :
                                   SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
    rc = sqlite3_open_v2(path, &q->db, flags, NULL);
    if (rc != SQLITE_OK) {
        q->transient = rc_transient(rc);
        qerr_set(err, errlen, "store %s: cannot open: %s", path,
                 q->db != NULL ? sqlite3_errmsg(q->db) : sqlite3_errstr(rc));
        goto out;
    }
    sqlite3_extended_result_codes(q->db, 1);
    sqlite3_busy_timeout(q->db, Q_BUSY_TIMEOUT_MS);
    sqlite3_db_config(q->db, SQLITE_DBCONFIG_DEFENSIVE, 1, NULL);
    /* Many handles (one per thread) share the OS page cache; a small own
     * cache each keeps the daemon's memory bounded. */
    if (exec_sql(q, "PRAGMA foreign_keys=ON", "enable foreign keys", err,
                 errlen) != Q_OK ||
        exec_sql(q, "PRAGMA cache_size=-256", "set cache size", err,
                 errlen) != Q_OK)
        goto out;
    if (q->readonly) {
        if (exec_sql(q, "PRAGMA query_only=ON", "set read-only", err,
                     errlen) != Q_OK)
            goto out;
    } else {
        if (pragma_wal(q, err, errlen) != Q_OK ||
            exec_sql(q, "PRAGMA synchronous=FULL", "set synchronous", err,
                     errlen) != Q_OK)
            goto out;
    }
    if (schema_check(q, path, err, errlen) != Q_OK)
        goto out;
    if (!q->readonly && gc_attach(q, path, err, errlen) != Q_OK)
        goto out;
    *qp = q;
    q = NULL;
    result = Q_OK;
out:
    queue_close(q);
    return result;
}

void
queue_close(struct queue *q)
{
    int i;

    if (q == NULL)
        return;
    gc_detach(q);
    for (i = 0; i < ST_COUNT; i++)
        sqlite3_finalize(q->st[i]);
    sqlite3_close(q->db);
    free(q);
}

int
queue_set_sync(struct queue *q, int on)
{
    int rc = exec_sql(q, on ? "PRAGMA synchronous=FULL" :
                      "PRAGMA synchronous=OFF", "set synchronous", NULL, 0);

    if (rc == Q_OK)
        q->sync = on != 0;
    return rc;
}

/* ---- group commit ------------------------------------------------------- *
 *
 * Every writable handle on one file (same canonical path) shares one
 * committer.  A hand-in or an acknowledgement is prepared by its caller
 * outside any lock (checked, digest computed, tracking number drawn) and
 * appended to the committer's pending list.  If no batch is being
 * written, the caller leads: it takes the pending requests (at most
 * GC_BATCH_MAX of them, GC_BATCH_BYTES of content), applies each inside
 * its own savepoint of one write transaction on the leader's own handle,
 * commits once, answers them all and hands the lead to the first request
 * that arrived meanwhile.  Otherwise the caller sleeps on its handle's
 * condition variable until it is answered or made leader.  A request is
 * answered Q_OK only after the COMMIT of its batch returned SQLITE_OK; a
 * request that fails is rolled back to its savepoint alone.
 */

#define GC_BATCH_MAX    256
#define GC_BATCH_BYTES  ((size_t)8 << 20)
#define GC_PENDING      2              /* result not known yet */

enum gc_kind { GC_HANDIN, GC_ACK };

struct gc_req {
    struct gc_req *next;
    struct queue *q;                   /* the handle that asked */
    enum gc_kind kind;
    int64_t now;
    size_t bytes;                      /* content size, for the cap */
    /* hand-in */
    const struct q_handin *in;
    unsigned char md[Q_SHA256_LEN];
    char tracking[Q_TRACKING_MAX];     /* drawn beforehand; the answer */
    int duplicate;
    /* acknowledgement */
    const char *partner, *ack_tracking, *message;
    int state, mlen;
    /* answer */
    int result;                        /* Q_OK, Q_NOTFOUND, Q_ERR */
    int transient;
    char *err;                         /* the caller's buffer */
    size_t errlen;
    /* under the committer's mutex */
    int done, lead;
};

struct committer {
    struct committer *next;            /* registry list */
    char *path;                        /* canonical path of the store;
                                          NULL: in memory, not shared */
    int refs;                          /* open handles; under gc_reg_mu */
    pthread_mutex_t mu;                /* everything below */
    struct gc_req *head, *tail;        /* pending, oldest first */
    int busy;                          /* a leader is at work */
    uint64_t handins, commits;         /* hand-ins answered Q_OK; commits
                                          that carried at least one */
};

static pthread_mutex_t gc_reg_mu = PTHREAD_MUTEX_INITIALIZER;
static struct committer *gc_reg;

static int handin_apply(struct queue *q, struct gc_req *r);
static int ack_apply(struct queue *q, struct gc_req *r);

/* gc_attach - join (or create) the committer of q's store, found by the
 * canonical path of its file; a store without a file (in memory) gets a
 * committer of its own */
static int
gc_attach(struct queue *q, const char *path, char *err, size_t errlen)
{
    struct committer *c = NULL;
    const char *file = sqlite3_db_filename(q->db, "main");
    char *canon = NULL;
    int result = Q_ERR;

    if (file != NULL && *file != '\0') {
        canon = realpath(file, NULL);
        if (canon == NULL)
            canon = strdup(file);
        if (canon == NULL)
            return q_failx(q, err, errlen, "store %s: out of memory", path);
    }
    if (pthread_cond_init(&q->gc_cv, NULL) != 0) {
        free(canon);
        return q_failx(q, err, errlen, "store: cannot make a condition "
                       "variable");
    }
    pthread_mutex_lock(&gc_reg_mu);
    for (c = canon != NULL ? gc_reg : NULL; c != NULL; c = c->next)
        if (c->path != NULL && strcmp(c->path, canon) == 0)
            break;
    if (c == NULL) {
        c = calloc(1, sizeof(*c));
        if (c == NULL || pthread_mutex_init(&c->mu, NULL) != 0) {
            free(c);
            q_failx(q, err, errlen, "store %s: out of memory", path);
            goto out;
        }
        c->path = canon;
        canon = NULL;
        c->next = gc_reg;
        gc_reg = c;
    }
    c->refs++;
    q->gc = c;
    result = Q_OK;
out:
    pthread_mutex_unlock(&gc_reg_mu);
    if (result != Q_OK)
        pthread_cond_destroy(&q->gc_cv);
    free(canon);
    return result;
}

/* gc_detach - leave the committer; the last handle out frees it */
static void
gc_detach(struct queue *q)
{
    struct committer *c = q->gc, **pp;

    if (c == NULL)
        return;
    q->gc = NULL;
    pthread_mutex_lock(&gc_reg_mu);
    if (--c->refs == 0) {
        for (pp = &gc_reg; *pp != NULL; pp = &(*pp)->next)
            if (*pp == c) {
                *pp = c->next;
                break;
            }
    } else {
        c = NULL;
    }
    pthread_mutex_unlock(&gc_reg_mu);
    pthread_cond_destroy(&q->gc_cv);
    if (c != NULL) {
        pthread_mutex_destroy(&c->mu);
        free(c->path);
        free(c);
    }
}

/* gc_fail_all - every request of batch not answered yet, and every one
 * answered Q_OK when all_ok is set, gets the batch-wide error msg */
static void
gc_fail_all(struct gc_req *batch, int all_ok, const char *msg, int transient)
{
    struct gc_req *r;

    for (r = batch; r != NULL; r = r->next) {
        if (r->result == GC_PENDING || (all_ok && r->result != Q_ERR)) {
            r->result = Q_ERR;
            r->transient = transient;
            qerr_set(r->err, r->errlen, "%s", msg);
        }
    }
}

/* gc_one - one request inside its savepoint; 0, or -1 if the transaction
 * cannot go on (msg then says why) */
static int
gc_one(struct queue *q, struct gc_req *r, char *msg, size_t msglen)
{
    int rc;

    if (run(q, ST_SP_BEGIN, "open a savepoint", msg, msglen) != Q_OK)
        return -1;
    rc = r->kind == GC_HANDIN ? handin_apply(q, r) : ack_apply(q, r);
    r->result = rc;
    if (rc == Q_ERR) {
        r->transient = q->transient;
        if (sqlite3_get_autocommit(q->db)) {
            /* SQLite gave up the whole transaction (full, I/O error) */
            qerr_set(msg, msglen, "%s", r->err != NULL && r->errlen > 0 ?
                     r->err : "store: transaction rolled back");
            return -1;
        }
        if (run(q, ST_SP_ROLLBACK, "roll back a request", msg,
                msglen) != Q_OK)
            return -1;
    }
    if (run(q, ST_SP_RELEASE, "release a savepoint", msg, msglen) != Q_OK)
        return -1;
    return 0;
}

/* gc_run - write batch in one transaction on q's connection and fill in
 * every request's answer; no lock is held */
static void
gc_run(struct queue *q, struct gc_req *batch)
{
    char msg[Q_ERROR_MAX];
    struct gc_req *r;
    int need_sync = 0, synced = 0, broken = 0;

    for (r = batch; r != NULL; r = r->next)
        need_sync |= r->q->sync;
    /* Whoever leads, a request from a durable handle is committed
     * durably. */
    if (need_sync && !q->sync) {
        if (exec_sql(q, "PRAGMA synchronous=FULL", "set synchronous", msg,
                     sizeof(msg)) != Q_OK) {
            gc_fail_all(batch, 1, msg, q->transient);
            return;
        }
        synced = 1;
    }
    if (run(q, ST_BEGIN, "begin transaction", msg, sizeof(msg)) != Q_OK) {
        gc_fail_all(batch, 1, msg, q->transient);
        goto out;
    }
    for (r = batch; r != NULL && !broken; r = r->next)
        if (gc_one(q, r, msg, sizeof(msg)) != 0)
            broken = 1;
    if (broken) {
        int transient = q->transient;

        tx_rollback(q);
        gc_fail_all(batch, 1, msg, transient);
        goto out;
    }
    if (run(q, ST_COMMIT, "commit", msg, sizeof(msg)) != Q_OK) {
        int transient = q->transient;

        tx_rollback(q);
        gc_fail_all(batch, 1, msg, transient);
        goto out;
    }
out:
    if (synced)
        exec_sql(q, "PRAGMA synchronous=OFF", "set synchronous", NULL, 0);
}

/* gc_submit - have r written by a group commit; returns r->result after
 * the commit that carried it (or the error that stopped it) */
static int
gc_submit(struct queue *q, struct gc_req *r)
{
    struct committer *c = q->gc;
    struct gc_req *batch, *last, *x, *next;
    size_t n, bytes;
    uint64_t ok;

    r->q = q;
    r->next = NULL;
    r->result = GC_PENDING;
    r->transient = 0;
    r->done = r->lead = 0;
    pthread_mutex_lock(&c->mu);
    if (c->tail != NULL)
        c->tail->next = r;
    else
        c->head = r;
    c->tail = r;
    if (!c->busy) {
        c->busy = 1;
        r->lead = 1;
    }
    while (!r->done && !r->lead)
        pthread_cond_wait(&q->gc_cv, &c->mu);
    if (!r->done) {
        /* Lead: r is at the head.  Take what is pending, up to the cap. */
        batch = last = c->head;
        n = 1;
        bytes = batch->bytes;
        while (last->next != NULL && n < GC_BATCH_MAX &&
               bytes + last->next->bytes <= GC_BATCH_BYTES) {
            last = last->next;
            bytes += last->bytes;
            n++;
        }
        c->head = last->next;
        if (c->head == NULL)
            c->tail = NULL;
        last->next = NULL;
        pthread_mutex_unlock(&c->mu);

        gc_run(q, batch);

        ok = 0;
        for (x = batch; x != NULL; x = x->next)
            if (x->kind == GC_HANDIN && x->result == Q_OK)
                ok++;
        pthread_mutex_lock(&c->mu);
        if (ok > 0) {
            c->handins += ok;
            c->commits++;
        }
        for (x = batch; x != NULL; x = next) {
            next = x->next;
            x->done = 1;
            if (x != r)
                pthread_cond_signal(&x->q->gc_cv);
        }
        if (c->head != NULL) {
            c->head->lead = 1;
            pthread_cond_signal(&c->head->q->gc_cv);
        } else {
            c->busy = 0;
        }
    }
    pthread_mutex_unlock(&c->mu);
    q->transient = r->result == Q_ERR && r->transient;
    return r->result;
}

void
queue_stats(struct queue *q, uint64_t *handins, uint64_t *commits)
{
    struct committer *c = q != NULL ? q->gc : NULL;

    *handins = *commits = 0;
    if (c == NULL)
        return;
    pthread_mutex_lock(&c->mu);
    *handins = c->handins;
    *commits = c->commits;
    pthread_mutex_unlock(&c->mu);
}

/* ---- hand-in ------------------------------------------------------------ */

static int
handin_check(struct queue *q, const struct q_handin *in, char *err,
             size_t errlen)
{
    size_t i;

    if (in == NULL)
        return q_failx(q, err, errlen, "store: no hand-in given");
    if (in->from == NULL || *in->from == '\0' || strlen(in->from) > 8)
        return q_failx(q, err, errlen, "store: hand-in without a valid "
                       "issuer country");
    if (in->to == NULL || *in->to == '\0' || strlen(in->to) > 8)
        return q_failx(q, err, errlen, "store: hand-in without a valid "
                       "destination country");
    if (in->number == NULL || *in->number == '\0' ||
        strlen(in->number) >= Q_NUMBER_MAX)
        return q_failx(q, err, errlen, "store: certificate number missing "
                       "or longer than %d bytes", Q_NUMBER_MAX - 1);
    if (in->sender != NULL && strlen(in->sender) >= Q_PARTNER_MAX)
        return q_failx(q, err, errlen, "store: sender id longer than %d "
                       "bytes", Q_PARTNER_MAX - 1);
    if (in->content == NULL && in->content_len > 0)
        return q_failx(q, err, errlen, "store: hand-in content missing");
    if (in->to_partners == NULL || in->nto == 0)
        return q_failx(q, err, errlen, "store: hand-in without addressees");
    for (i = 0; i < in->nto; i++) {
        if (!partner_ok(in->to_partners[i].partner))
            return q_failx(q, err, errlen, "store: addressee %zu has no "
                           "valid partner id", i + 1);
        if (in->to_partners[i].channel != Q_CH_PULL &&
            in->to_partners[i].channel != Q_CH_SMTP)
            return q_failx(q, err, errlen, "store: addressee %zu has an "
                           "unknown channel %d", i + 1,
                           in->to_partners[i].channel);
    }
    return Q_OK;
}

/* tracking_make - "ECG" YYYYMMDD "-" 16 hex digits */
static int
tracking_make(int64_t ms, char *out, size_t outlen)
{
    unsigned char r[8];
    struct tm tm;
    time_t t = (time_t)(ms / 1000);
    size_t i, n;

    if (RAND_bytes(r, sizeof(r)) != 1 || gmtime_r(&t, &tm) == NULL)
        return -1;
    n = strftime(out, outlen, "ECG%Y%m%d-", &tm);
    if (n == 0 || n + 2 * sizeof(r) >= outlen)
        return -1;
    for (i = 0; i < sizeof(r); i++)
        snprintf(out + n + 2 * i, 3, "%02x", r[i]);
    return 0;
}

/* handin_duplicate - the first tracking of (from, number, digest), if any */
static int
handin_duplicate(struct queue *q, const struct q_handin *in,
                 const unsigned char *md, char *tracking, int *found,
                 char *err, size_t errlen)
{
    sqlite3_stmt *st = NULL;
    int result = Q_ERR, rc;

    *found = 0;
    if (stmt_get(q, ST_DUP, &st, err, errlen) != Q_OK)
        goto out;
    sqlite3_bind_text(st, 1, in->from, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, in->number, -1, SQLITE_STATIC);
    sqlite3_bind_blob(st, 3, md, Q_SHA256_LEN, SQLITE_STATIC);
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        snprintf(tracking, Q_TRACKING_MAX, "%s", col_text(st, 0));
        *found = 1;
    } else if (rc != SQLITE_DONE) {
        q_fail(q, rc, "look for an earlier hand-in", err, errlen);
        goto out;
    }
    result = Q_OK;
out:
    stmt_done(st);
    return result;
}

static int
handin_version(struct queue *q, const struct q_handin *in, int *version,
               char *err, size_t errlen)
{
    sqlite3_stmt *st = NULL;
    int result = Q_ERR, rc;

    if (stmt_get(q, ST_MAXVER, &st, err, errlen) != Q_OK)
        goto out;
    sqlite3_bind_text(st, 1, in->from, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, in->number, -1, SQLITE_STATIC);
    rc = sqlite3_step(st);
    if (rc != SQLITE_ROW) {
        q_fail(q, rc, "find the latest version", err, errlen);
        goto out;
    }
    *version = sqlite3_column_int(st, 0) + 1;
    result = Q_OK;
out:
    stmt_done(st);
    return result;
}

/* handin_cert - insert the certificate row under the tracking number drawn
 * beforehand (a fresh one if it is empty or clashes) */
static int
handin_cert(struct queue *q, const struct q_handin *in,
            const unsigned char *md, int version, int64_t now,
            char *tracking, sqlite3_int64 *cert_id, char *err, size_t errlen)
{
    static const unsigned char empty[1];
    sqlite3_stmt *st = NULL;
    int result = Q_ERR, rc = SQLITE_ERROR, attempt;

    if (stmt_get(q, ST_INS_CERT, &st, err, errlen) != Q_OK)
        goto out;
    for (attempt = 0; attempt < 4; attempt++) {
        if ((attempt > 0 || tracking[0] == '\0') &&
            tracking_make(now, tracking, Q_TRACKING_MAX) != 0) {
            q_failx(q, err, errlen, "store: cannot make a tracking number "
                    "(random generator failed)");
            goto out;
        }
        sqlite3_bind_text(st, 1, tracking, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, in->from, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 3, in->to, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 4, in->number, -1, SQLITE_STATIC);
        sqlite3_bind_int(st, 5, version);
        sqlite3_bind_int(st, 6, in->type);
        sqlite3_bind_int(st, 7, in->status);
        if (in->sender != NULL)
            sqlite3_bind_text(st, 8, in->sender, -1, SQLITE_STATIC);
        else
            sqlite3_bind_null(st, 8);
        rc = sqlite3_bind_blob64(st, 9, in->content_len > 0 ? in->content :
                                 empty, (sqlite3_uint64)in->content_len,
                                 SQLITE_STATIC);
        if (rc != SQLITE_OK) {
            q_fail(q, rc, "store the certificate", err, errlen);
            goto out;
        }
        sqlite3_bind_blob(st, 10, md, Q_SHA256_LEN, SQLITE_STATIC);
        sqlite3_bind_int64(st, 11, now);
        rc = sqlite3_step(st);
        if (rc == SQLITE_DONE)
            break;
        /* A tracking number collision is the only unique clash possible
         * under the write lock: draw another. */
        if (rc != SQLITE_CONSTRAINT_UNIQUE)
            break;
        stmt_done(st);
    }
    if (rc != SQLITE_DONE) {
        q_fail(q, rc, "store the certificate", err, errlen);
        goto out;
    }
    *cert_id = sqlite3_last_insert_rowid(q->db);
    result = Q_OK;
out:
    stmt_done(st);
    return result;
}

/* event_add - record that delivery id entered state */
static int
event_add(struct queue *q, sqlite3_int64 id, int64_t at, int state,
          const char *note, int note_len, char *err, size_t errlen)
{
    sqlite3_stmt *st = NULL;
    int result = Q_ERR, rc;

    if (stmt_get(q, ST_INS_EVENT, &st, err, errlen) != Q_OK)
        goto out;
    sqlite3_bind_int64(st, 1, id);
    sqlite3_bind_int64(st, 2, at);
    sqlite3_bind_int(st, 3, state);
    sqlite3_bind_text(st, 4, note != NULL ? note : "", note != NULL ?
                      note_len : 0, SQLITE_STATIC);
    rc = sqlite3_step(st);
    if (rc != SQLITE_DONE) {
        q_fail(q, rc, "record the event", err, errlen);
        goto out;
    }
    result = Q_OK;
out:
    stmt_done(st);
    return result;
}

/* handin_deliveries - one delivery (and its creation event) per addressee;
 * an addressee listed twice gets one delivery */
static int
handin_deliveries(struct queue *q, const struct q_handin *in,
                  sqlite3_int64 cert_id, int64_t now, char *err,
                  size_t errlen)
{
    sqlite3_stmt *st = NULL;
    sqlite3_int64 id;
    int result = Q_ERR, rc, added;
    size_t i;

    if (stmt_get(q, ST_INS_DEL, &st, err, errlen) != Q_OK)
        goto out;
    for (i = 0; i < in->nto; i++) {
        sqlite3_bind_int64(st, 1, cert_id);
        sqlite3_bind_text(st, 2, in->to_partners[i].partner, -1,
                          SQLITE_STATIC);
        sqlite3_bind_int(st, 3, in->to_partners[i].channel);
        sqlite3_bind_int64(st, 4, now);
        /* mail is due at once; pull waits for the partner */
        sqlite3_bind_int64(st, 5, in->to_partners[i].channel == Q_CH_SMTP ?
                           now : 0);
        rc = sqlite3_step(st);
        if (rc != SQLITE_DONE) {
            q_fail(q, rc, "store a delivery", err, errlen);
            goto out;
        }
        added = sqlite3_changes(q->db);
        id = sqlite3_last_insert_rowid(q->db);
        stmt_done(st);
        if (added == 1 &&
            event_add(q, id, now, Q_WAITING, "created", 7, err,
                      errlen) != Q_OK)
            goto out;
    }
    result = Q_OK;
out:
    stmt_done(st);
    return result;
}

/* handin_apply - r's hand-in inside the leader's open transaction on q */
static int
handin_apply(struct queue *q, struct gc_req *r)
{
    const struct q_handin *in = r->in;
    sqlite3_int64 cert_id = 0;
    int found = 0, version = 0;

    if (handin_duplicate(q, in, r->md, r->tracking, &found, r->err,
                         r->errlen) != Q_OK)
        return Q_ERR;
    if (found) {
        r->duplicate = 1;
        return Q_OK;
    }
    if (handin_version(q, in, &version, r->err, r->errlen) != Q_OK ||
        handin_cert(q, in, r->md, version, r->now, r->tracking, &cert_id,
                    r->err, r->errlen) != Q_OK ||
        handin_deliveries(q, in, cert_id, r->now, r->err, r->errlen) != Q_OK)
        return Q_ERR;
    return Q_OK;
}

/* The request is prepared here, outside any lock; the group commit writes
 * it (see gc_submit). */
int
queue_handin(struct queue *q, const struct q_handin *in,
             char *tracking, int *duplicate, char *err, size_t errlen)
{
    struct gc_req r;
    unsigned int mdlen = 0;
    size_t i;

    *duplicate = 0;
    tracking[0] = '\0';
    if (handin_check(q, in, err, errlen) != Q_OK)
        return Q_ERR;
    if (q->readonly || q->gc == NULL)
        return q_failx(q, err, errlen,
                       "store: opened read-only; cannot change it");
    memset(&r, 0, sizeof(r));
    r.kind = GC_HANDIN;
    r.in = in;
    r.err = err;
    r.errlen = errlen;
    if (EVP_Digest(in->content_len > 0 ? in->content :
                   (const unsigned char *)"", in->content_len, r.md, &mdlen,
                   EVP_sha256(), NULL) != 1 || mdlen != Q_SHA256_LEN)
        return q_failx(q, err, errlen, "store: SHA-256 of the content failed");
    r.now = now_ms();
    if (tracking_make(r.now, r.tracking, sizeof(r.tracking)) != 0)
        return q_failx(q, err, errlen, "store: cannot make a tracking "
                       "number (random generator failed)");
    r.bytes = in->content_len + strlen(in->number) + 256;
    for (i = 0; i < in->nto; i++)
        r.bytes += strlen(in->to_partners[i].partner) + 64;
    if (gc_submit(q, &r) != Q_OK)
        return Q_ERR;
    snprintf(tracking, Q_TRACKING_MAX, "%s", r.tracking);
    *duplicate = r.duplicate;
    return Q_OK;
}

/* ---- what a partner sees ------------------------------------------------ */

/* mark_pulled - note the time and count of a pull on deliveries ids[] */
static int
mark_pulled(struct queue *q, const char *partner, const sqlite3_int64 *ids,
            size_t n, char *err, size_t errlen)
{
    sqlite3_stmt *st = NULL;
    int64_t now = now_ms();
    int result = Q_ERR, began = 0, rc;
    size_t i;

    if (n == 0)
        return Q_OK;
    if (tx_begin(q, err, errlen) != Q_OK)
        goto out;
    began = 1;
    if (stmt_get(q, ST_MARK, &st, err, errlen) != Q_OK)
        goto out;
    for (i = 0; i < n; i++) {
        sqlite3_bind_int64(st, 1, now);
        sqlite3_bind_int64(st, 2, ids[i]);
        sqlite3_bind_text(st, 3, partner, -1, SQLITE_STATIC);
        rc = sqlite3_step(st);
        if (rc != SQLITE_DONE) {
            q_fail(q, rc, "mark as pulled", err, errlen);
            goto out;
        }
        stmt_done(st);
    }
    began = 0;
    if (tx_commit(q, err, errlen) != Q_OK)
        goto out;
    result = Q_OK;
out:
    stmt_done(st);
    if (began || (result != Q_OK && !sqlite3_get_autocommit(q->db)))
        tx_rollback(q);
    return result;
}

/* waiting_scan - the headers/pull scan; with content the rows the callback
 * took (returned 0 for) are marked as pulled afterwards, in one short write
 * transaction, so no write lock is held while the callback runs. */
static int
waiting_scan(struct queue *q, const char *partner, int limit, int content,
             q_envelope_cb cb, void *arg, char *err, size_t errlen)
{
    struct q_envelope e;
    sqlite3_stmt *st = NULL;
    sqlite3_int64 *ids = NULL, *grown;
    size_t nids = 0, cap = 0;
    int result = Q_ERR, rc, stop = 0;

    if (!partner_ok(partner)) {
        q_failx(q, err, errlen, "store: no valid partner id given");
        goto out;
    }
    if (cb == NULL) {
        q_failx(q, err, errlen, "store: no callback given");
        goto out;
    }
    if (limit <= 0) {
        result = Q_OK;
        goto out;
    }
    if (stmt_get(q, content ? ST_PULL : ST_HEADERS, &st, err, errlen) != Q_OK)
        goto out;
    sqlite3_bind_text(st, 1, partner, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 2, limit);
    while (!stop && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (env_fill(q, st, &e, err, errlen) != Q_OK)
            goto out;
        if (content) {
            env_content(st, ENV_NCOLS + 1, &e);
            if (nids == cap) {
                cap = cap ? 2 * cap : 16;
                grown = realloc(ids, cap * sizeof(*ids));
                if (grown == NULL) {
                    q_failx(q, err, errlen, "store: out of memory");
                    goto out;
                }
                ids = grown;
            }
        }
        stop = cb(arg, &e) != 0;
        if (content && !stop)
            ids[nids++] = sqlite3_column_int64(st, ENV_NCOLS);
    }
    if (!stop && rc != SQLITE_DONE) {
        q_fail(q, rc, content ? "pull" : "list waiting", err, errlen);
        goto out;
    }
    stmt_done(st);
    st = NULL;
    /* The pulled mark is information for the operator: the envelopes are
     * already with the caller, so a store that cannot write (disk full)
     * does not fail the pull. */
    (void)mark_pulled(q, partner, ids, nids, err, errlen);
    q->transient = 0;
    result = Q_OK;
out:
    stmt_done(st);
    free(ids);
    return result;
}

int
queue_headers(struct queue *q, const char *partner, int limit,
              q_envelope_cb cb, void *arg, char *err, size_t errlen)
{
    return waiting_scan(q, partner, limit, 0, cb, arg, err, errlen);
}

int
queue_pull(struct queue *q, const char *partner, int limit,
           q_envelope_cb cb, void *arg, char *err, size_t errlen)
{
    return waiting_scan(q, partner, limit, 1, cb, arg, err, errlen);
}

static int
tracking_ok(const char *t)
{
    return t != NULL && *t != '\0' && strlen(t) < Q_TRACKING_MAX;
}

/* one_envelope - the envelope of tracking that partner may see, through
 * statement which (ST_PULL_ONE with content, ST_TRACK without). */
static int
one_envelope(struct queue *q, int which, const char *what,
             const char *partner, const char *tracking, q_envelope_cb cb,
             void *arg, char *err, size_t errlen)
{
    struct q_envelope e;
    sqlite3_stmt *st = NULL;
    int result = Q_ERR, rc;

    if (!partner_ok(partner)) {
        q_failx(q, err, errlen, "store: no valid partner id given");
        goto out;
    }
    if (!tracking_ok(tracking)) {
        result = Q_NOTFOUND;
        goto out;
    }
    if (stmt_get(q, which, &st, err, errlen) != Q_OK)
        goto out;
    sqlite3_bind_text(st, 1, tracking, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, partner, -1, SQLITE_STATIC);
    rc = sqlite3_step(st);
    if (rc == SQLITE_DONE) {
        result = Q_NOTFOUND;
        goto out;
    }
    if (rc != SQLITE_ROW) {
        q_fail(q, rc, what, err, errlen);
        goto out;
    }
    if (env_fill(q, st, &e, err, errlen) != Q_OK)
        goto out;
    if (which == ST_PULL_ONE)
        env_content(st, ENV_NCOLS + 1, &e);
    if (cb != NULL)
        cb(arg, &e);
    result = Q_OK;
out:
    stmt_done(st);
    return result;
}

/* A re-read by tracking number: no write, no fsync. */
int
queue_pull_one(struct queue *q, const char *partner, const char *tracking,
               q_envelope_cb cb, void *arg, char *err, size_t errlen)
{
    return one_envelope(q, ST_PULL_ONE, "pull", partner, tracking, cb, arg,
                        err, errlen);
}

/* ack_apply - r's acknowledgement inside the leader's open transaction */
static int
ack_apply(struct queue *q, struct gc_req *r)
{
    sqlite3_stmt *st = NULL;
    sqlite3_int64 id;
    int result = Q_ERR, rc, cur;

    if (stmt_get(q, ST_ACK_FIND, &st, r->err, r->errlen) != Q_OK)
        goto out;
    sqlite3_bind_text(st, 1, r->ack_tracking, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, r->partner, -1, SQLITE_STATIC);
    rc = sqlite3_step(st);
    if (rc == SQLITE_DONE) {
        result = Q_NOTFOUND;
        goto out;
    }
    if (rc != SQLITE_ROW) {
        q_fail(q, rc, "find the delivery", r->err, r->errlen);
        goto out;
    }
    id = sqlite3_column_int64(st, 0);
    cur = sqlite3_column_int(st, 1);
    stmt_done(st);
    st = NULL;
    if (!q_state_final(cur)) {
        if (stmt_get(q, ST_ACK_SET, &st, r->err, r->errlen) != Q_OK)
            goto out;
        sqlite3_bind_int(st, 1, r->state);
        sqlite3_bind_int64(st, 2, r->now);
        sqlite3_bind_text(st, 3, r->message, r->mlen, SQLITE_STATIC);
        sqlite3_bind_int64(st, 4, id);
        sqlite3_bind_text(st, 5, r->partner, -1, SQLITE_STATIC);
        rc = sqlite3_step(st);
        if (rc != SQLITE_DONE) {
            q_fail(q, rc, "record the acknowledgement", r->err, r->errlen);
            goto out;
        }
        stmt_done(st);
        st = NULL;
        if (event_add(q, id, r->now, r->state, r->message, r->mlen, r->err,
                      r->errlen) != Q_OK)
            goto out;
    }
    result = Q_OK;
out:
    stmt_done(st);
    return result;
}

/* Written by the group commit too (see gc_submit). */
int
queue_ack(struct queue *q, const char *partner, const char *tracking,
          int state, const char *message, char *err, size_t errlen)
{
    struct gc_req r;

    if (!partner_ok(partner))
        return q_failx(q, err, errlen, "store: no valid partner id given");
    if (state != Q_DELIVERED && state != Q_DELIVERED_WARNINGS &&
        state != Q_NOT_READABLE && state != Q_FAILED)
        return q_failx(q, err, errlen, "store: %s is not an "
                       "acknowledgement state", q_state_name(state));
    if (!tracking_ok(tracking))
        return Q_NOTFOUND;
    if (q->readonly || q->gc == NULL)
        return q_failx(q, err, errlen,
                       "store: opened read-only; cannot change it");
    memset(&r, 0, sizeof(r));
    r.kind = GC_ACK;
    r.partner = partner;
    r.ack_tracking = tracking;
    r.state = state;
    r.message = message != NULL ? message : "";
    r.mlen = text_cut(r.message, Q_ERROR_MAX - 1);
    r.now = now_ms();
    r.bytes = (size_t)r.mlen + 256;
    r.err = err;
    r.errlen = errlen;
    return gc_submit(q, &r);
}

int
queue_track(struct queue *q, const char *partner, const char *tracking,
            q_envelope_cb cb, void *arg, char *err, size_t errlen)
{
    return one_envelope(q, ST_TRACK, "track", partner, tracking, cb, arg,
                        err, errlen);
}

/* ---- operator ----------------------------------------------------------- */

int
queue_op_status(struct queue *q, q_status_cb cb, void *arg,
                char *err, size_t errlen)
{
    struct q_status_row r;
    sqlite3_stmt *st = NULL;
    int result = Q_ERR, rc, stop = 0;

    if (stmt_get(q, q->version >= 2 ? ST_STATUS : ST_STATUS_V1, &st, err,
                 errlen) != Q_OK)
        goto out;
    while (!stop && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        r.partner = col_text(st, 0);
        r.channel = sqlite3_column_int(st, 1);
        r.state = sqlite3_column_int(st, 2);
        r.count = sqlite3_column_int64(st, 3);
        r.oldest_ms = sqlite3_column_int64(st, 4);
        r.next_attempt_ms = sqlite3_column_int64(st, 5);  /* NULL -> 0 */
        stop = cb != NULL && cb(arg, &r) != 0;
    }
    if (!stop && rc != SQLITE_DONE) {
        q_fail(q, rc, "count deliveries", err, errlen);
        goto out;
    }
    result = Q_OK;
out:
    stmt_done(st);
    return result;
}

int
queue_op_list(struct queue *q, const struct q_filter *f,
              q_delivery_cb cb, void *arg, char *err, size_t errlen)
{
    struct q_delivery d;
    sqlite3_stmt *st = NULL;
    char sql[1024];
    int result = Q_ERR, rc, stop = 0, n;
    const char *partner = f != NULL ? f->partner : NULL;
    int state = f != NULL ? f->state : -1;
    int channel = f != NULL ? f->channel : 0;
    int limit = f != NULL && f->limit > 0 ? f->limit : -1;

    n = snprintf(sql, sizeof(sql),
                 "SELECT " DEL_COLS
                 " FROM delivery d JOIN certificate c ON c.id = d.cert_id"
                 " WHERE 1%s%s%s ORDER BY d.id LIMIT ?4",
                 partner != NULL ? " AND d.partner = ?1" : "",
                 state >= 0 ? " AND d.state = ?2" : "",
                 channel != 0 ? " AND d.channel = ?3" : "");
    if (n < 0 || (size_t)n >= sizeof(sql)) {
        q_failx(q, err, errlen, "store: list query too long");
        goto out;
    }
    rc = sqlite3_prepare_v2(q->db, sql, -1, &st, NULL);
    if (rc != SQLITE_OK) {
        q_fail(q, rc, "prepare the list", err, errlen);
        goto out;
    }
    if (partner != NULL)
        sqlite3_bind_text(st, 1, partner, -1, SQLITE_STATIC);
    if (state >= 0)
        sqlite3_bind_int(st, 2, state);
    if (channel != 0)
        sqlite3_bind_int(st, 3, channel);
    sqlite3_bind_int(st, 4, limit);
    while (!stop && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        del_fill(st, &d);
        stop = cb != NULL && cb(arg, &d) != 0;
    }
    if (!stop && rc != SQLITE_DONE) {
        q_fail(q, rc, "list deliveries", err, errlen);
        goto out;
    }
    result = Q_OK;
out:
    sqlite3_finalize(st);
    return result;
}

/* show_rows - the deliveries (del) or events (!del) of cert_id */
static int
show_rows(struct queue *q, sqlite3_int64 cert_id, q_delivery_cb del_cb,
          q_event_cb ev_cb, void *arg, int *stop, char *err, size_t errlen)
{
    struct q_delivery d;
    struct q_event ev;
    sqlite3_stmt *st = NULL;
    int result = Q_ERR, rc = SQLITE_DONE;

    if (stmt_get(q, del_cb != NULL ? ST_SHOW_DEL : ST_SHOW_EV, &st, err,
                 errlen) != Q_OK)
        goto out;
    sqlite3_bind_int64(st, 1, cert_id);
    while (!*stop && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (del_cb != NULL) {
            del_fill(st, &d);
            *stop = del_cb(arg, &d) != 0;
        } else {
            ev.partner = col_text(st, 0);
            ev.channel = sqlite3_column_int(st, 1);
            ev.at_ms = sqlite3_column_int64(st, 2);
            ev.state = sqlite3_column_int(st, 3);
            ev.note = col_text(st, 4);
            *stop = ev_cb(arg, &ev) != 0;
        }
    }
    if (!*stop && rc != SQLITE_DONE) {
        q_fail(q, rc, del_cb != NULL ? "list deliveries" : "list events",
               err, errlen);
        goto out;
    }
    result = Q_OK;
out:
    stmt_done(st);
    return result;
}

int
queue_op_show(struct queue *q, const char *tracking,
              q_envelope_cb env_cb, q_delivery_cb del_cb,
              q_event_cb ev_cb, void *arg, char *err, size_t errlen)
{
    struct q_envelope e;
    sqlite3_stmt *st = NULL;
    sqlite3_int64 cert_id;
    int result = Q_ERR, rc, stop = 0;

    if (!tracking_ok(tracking)) {
        result = Q_NOTFOUND;
        goto out;
    }
    if (stmt_get(q, ST_SHOW_CERT, &st, err, errlen) != Q_OK)
        goto out;
    sqlite3_bind_text(st, 1, tracking, -1, SQLITE_STATIC);
    rc = sqlite3_step(st);
    if (rc == SQLITE_DONE) {
        result = Q_NOTFOUND;
        goto out;
    }
    if (rc != SQLITE_ROW) {
        q_fail(q, rc, "show", err, errlen);
        goto out;
    }
    cert_id = sqlite3_column_int64(st, ENV_NCOLS);
    if (env_cb != NULL) {
        if (env_fill(q, st, &e, err, errlen) != Q_OK)
            goto out;
        env_content(st, ENV_NCOLS + 1, &e);
        stop = env_cb(arg, &e) != 0;
    }
    stmt_done(st);
    st = NULL;
    if (!stop && del_cb != NULL &&
        show_rows(q, cert_id, del_cb, NULL, arg, &stop, err, errlen) != Q_OK)
        goto out;
    if (!stop && ev_cb != NULL &&
        show_rows(q, cert_id, NULL, ev_cb, arg, &stop, err, errlen) != Q_OK)
        goto out;
    result = Q_OK;
out:
    stmt_done(st);
    return result;
}

/* check_rows - run a checking pragma; any row but a lone "ok" is a fault */
static int
check_rows(struct queue *q, const char *sql, const char *what, char *err,
           size_t errlen)
{
    sqlite3_stmt *st = NULL;
    size_t used = 0;
    int result = Q_ERR, rc, nrows = 0, ok = 0, i, ncol;
    const char *s;

    rc = sqlite3_prepare_v2(q->db, sql, -1, &st, NULL);
    if (rc != SQLITE_OK) {
        q_fail(q, rc, what, err, errlen);
        goto out;
    }
    if (err != NULL && errlen > 0)
        err[0] = '\0';
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        nrows++;
        ncol = sqlite3_column_count(st);
        if (ncol == 1 && strcmp(col_text(st, 0), "ok") == 0) {
            ok = 1;
            continue;
        }
        for (i = 0; i < ncol && err != NULL && used + 1 < errlen; i++) {
            s = col_text(st, i);
            used += (size_t)snprintf(err + used, errlen - used, "%s%s",
                                     used == 0 ? "store: " : (i == 0 ?
                                     "; " : " "), s);
            if (used >= errlen)
                used = errlen - 1;
        }
    }
    if (rc != SQLITE_DONE) {
        q_fail(q, rc, what, err, errlen);
        goto out;
    }
    if (nrows > (ok ? 1 : 0)) {
        q->transient = 0;
        goto out;
    }
    result = Q_OK;
out:
    sqlite3_finalize(st);
    return result;
}

int
queue_op_check(struct queue *q, char *err, size_t errlen)
{
    int result = Q_ERR;

    if (check_rows(q, "PRAGMA integrity_check", "integrity check", err,
                   errlen) != Q_OK ||
        check_rows(q, "PRAGMA foreign_key_check", "foreign key check", err,
                   errlen) != Q_OK)
        goto out;
    if (q->version >= 2) {
        int64_t bad = 0;
        int found = 0;

        if (one_int(q, COUNTS_DIFFER_SQL, "count check", &bad, &found, err,
                    errlen) != Q_OK)
            goto out;
        if (bad != 0) {
            q_failx(q, err, errlen, "store: the delivery counts disagree "
                    "with the deliveries in %lld group(s)", (long long)bad);
            goto out;
        }
    }
    qerr_set(err, errlen, "ok");
    result = Q_OK;
out:
    return result;
}

/* ---- mail push ---------------------------------------------------------- */

/* mail_copy - the claimed row of st (ST_MAIL_GET) into one allocation, so
 * that no read transaction stays open while the callback sends it */
static int
mail_copy(struct queue *q, sqlite3_stmt *st, sqlite3_int64 id,
          struct q_mail *m, unsigned char **buf, char *err, size_t errlen)
{
    static const int text_cols[] = { 0, 1, 4, 5, 9, 10 };
    const char *texts[6];
    size_t lens[6], total = Q_SHA256_LEN, clen, i;
    const void *sha, *content;
    unsigned char *p;

    sha = sqlite3_column_blob(st, 12);
    if (sha == NULL || sqlite3_column_bytes(st, 12) != Q_SHA256_LEN)
        return q_failx(q, err, errlen, "store: certificate %s has a damaged "
                       "digest; run the integrity check", col_text(st, 0));
    for (i = 0; i < 6; i++) {
        texts[i] = col_text(st, text_cols[i]);
        lens[i] = strlen(texts[i]) + 1;
        total += lens[i];
    }
    content = sqlite3_column_blob(st, 13);
    clen = content != NULL ? (size_t)sqlite3_column_bytes(st, 13) : 0;
    total += clen + 1;
    p = malloc(total);
    if (p == NULL)
        return q_failx(q, err, errlen, "store: out of memory");
    *buf = p;
    memset(m, 0, sizeof(*m));
    m->delivery_id = id;
    m->attempts = sqlite3_column_int(st, 2);
    m->created_ms = sqlite3_column_int64(st, 3);
    m->type = sqlite3_column_int(st, 6);
    m->status = sqlite3_column_int(st, 7);
    m->version = sqlite3_column_int(st, 8);
    m->received_ms = sqlite3_column_int64(st, 11);
    for (i = 0; i < 6; i++) {
        memcpy(p, texts[i], lens[i]);
        texts[i] = (const char *)p;
        p += lens[i];
    }
    m->tracking = texts[0];
    m->partner = texts[1];
    m->from = texts[2];
    m->to = texts[3];
    m->number = texts[4];
    m->sender = texts[5];
    memcpy(p, sha, Q_SHA256_LEN);
    m->sha256 = p;
    p += Q_SHA256_LEN;
    if (clen > 0)
        memcpy(p, content, clen);
    p[clen] = '\0';
    m->content = p;
    m->content_len = clen;
    return Q_OK;
}

/* The picks of one claim: what the due scan found, then what was taken. */
struct claim_item {
    sqlite3_int64 id;
    int attempts;                      /* after the take */
    struct q_mail m;                   /* after the copy; points into buf */
    unsigned char *buf;
};

/* The caller's grouping, remembered for a run of rows of one partner (the
 * due scan meets a backlog in such runs). */
struct group_memo {
    q_mail_group_cb fn;
    void *arg;
    char partner[Q_PARTNER_MAX];
    int group;
    int known;
};

static int
group_of(struct group_memo *g, const char *partner)
{
    size_t len;

    if (g->fn == NULL)
        return 0;
    if (g->known && strcmp(g->partner, partner) == 0)
        return g->group;
    g->group = g->fn(g->arg, partner);
    len = strlen(partner);
    g->known = len < sizeof(g->partner);
    if (g->known)
        memcpy(g->partner, partner, len + 1);
    return g->group;
}

/* mail_pick - the oldest due mail delivery whose group is not negative,
 * then the next due ones of its group, up to max; rows of other groups
 * are passed over, but only CLAIM_LOOKAHEAD of them once the first is
 * found (the batch is what is due near it, not a walk of the backlog).
 * it[0..*n-1].id in due order. */
static int
mail_pick(struct queue *q, int64_t now, struct group_memo *g, size_t max,
          struct claim_item *it, size_t *n, char *err, size_t errlen)
{
    sqlite3_stmt *st = NULL;
    size_t passed = 0;
    int result = Q_ERR, rc = SQLITE_DONE, want = -1, grp;

    *n = 0;
    if (stmt_get(q, ST_MAIL_DUE, &st, err, errlen) != Q_OK)
        goto out;
    sqlite3_bind_int64(st, 1, now);
    while (*n < max && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        grp = group_of(g, col_text(st, 2));
        if (grp >= 0 && (want < 0 || grp == want)) {
            want = grp;
            it[(*n)++].id = sqlite3_column_int64(st, 1);
        } else if (want >= 0 && ++passed >= CLAIM_LOOKAHEAD) {
            break;
        }
    }
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
        q_fail(q, rc, "find due mail", err, errlen);
        goto out;
    }
    result = *n > 0 ? Q_OK : Q_NOTFOUND;
out:
    stmt_done(st);
    return result;
}

/* mail_take - make delivery id sending under a lease; its attempt count */
static int
mail_take(struct queue *q, sqlite3_int64 id, int64_t now, int64_t lease_end,
          int64_t at, int *attempts, char *err, size_t errlen)
{
    sqlite3_stmt *st = NULL;
    int result = Q_ERR, rc;

    if (stmt_get(q, ST_MAIL_TAKE, &st, err, errlen) != Q_OK)
        goto out;
    sqlite3_bind_int64(st, 1, lease_end);
    sqlite3_bind_int64(st, 2, at);
    sqlite3_bind_int64(st, 3, id);
    sqlite3_bind_int64(st, 4, now);
    rc = sqlite3_step(st);
    if (rc == SQLITE_DONE) {            /* moved since it was picked */
        result = Q_NOTFOUND;
        goto out;
    }
    if (rc != SQLITE_ROW) {
        q_fail(q, rc, "claim mail", err, errlen);
        goto out;
    }
    *attempts = sqlite3_column_int(st, 0);
    rc = sqlite3_step(st);
    if (rc != SQLITE_DONE) {
        q_fail(q, rc, "claim mail", err, errlen);
        goto out;
    }
    result = Q_OK;
out:
    stmt_done(st);
    return result;
}

/* mail_take_all - in the open transaction, take every pick that is still
 * due; the ones moved since the pick (another claimer, the operator) drop
 * out of it[], the others keep their order.  Q_NOTFOUND: none left. */
static int
mail_take_all(struct queue *q, struct claim_item *it, size_t *n, int64_t now,
              int64_t lease_end, int64_t at, char *err, size_t errlen)
{
    size_t i, kept = 0;
    int r;

    for (i = 0; i < *n; i++) {
        r = mail_take(q, it[i].id, now, lease_end, at, &it[i].attempts, err,
                      errlen);
        if (r == Q_ERR)
            return Q_ERR;
        if (r == Q_OK)
            it[kept++] = it[i];
    }
    *n = kept;
    return kept > 0 ? Q_OK : Q_NOTFOUND;
}

/* mail_load - in the open transaction: the claim of it goes into the
 * history, and its row (with the certificate) is copied out */
static int
mail_load(struct queue *q, struct claim_item *it, int64_t at, char *err,
          size_t errlen)
{
    sqlite3_stmt *st = NULL;
    char note[32];
    int result = Q_ERR, rc;

    snprintf(note, sizeof(note), "attempt %d", it->attempts);
    if (event_add(q, it->id, at, Q_SENDING, note, (int)strlen(note), err,
                  errlen) != Q_OK)
        goto out;
    if (stmt_get(q, ST_MAIL_GET, &st, err, errlen) != Q_OK)
        goto out;
    sqlite3_bind_int64(st, 1, it->id);
    rc = sqlite3_step(st);
    if (rc != SQLITE_ROW) {
        if (rc == SQLITE_DONE)
            q_failx(q, err, errlen, "store: claimed mail delivery %lld has "
                    "no certificate", (long long)it->id);
        else
            q_fail(q, rc, "read claimed mail", err, errlen);
        goto out;
    }
    result = mail_copy(q, st, it->id, &it->m, &it->buf, err, errlen);
out:
    stmt_done(st);
    return result;
}

int
queue_mail_claim_batch(struct queue *q, int64_t now, int64_t lease_ms,
                       size_t max, q_mail_group_cb group, void *group_arg,
                       q_mail_cb cb, void *arg, size_t *claimed, char *err,
                       size_t errlen)
{
    struct group_memo g;
    struct claim_item *it = NULL;
    int64_t at = now_ms();
    size_t n = 0, i;
    int result = Q_ERR, began = 0, tries, r;

    if (claimed != NULL)
        *claimed = 0;
    if (now <= 0 || lease_ms < 0 || lease_ms > INT64_MAX - now) {
        q_failx(q, err, errlen, "store: claim without a valid time or "
                "lease");
        goto out;
    }
    if (max < 1 || max > Q_MAIL_BATCH_MAX) {
        q_failx(q, err, errlen, "store: a claim takes 1 to %d deliveries, "
                "not %zu", Q_MAIL_BATCH_MAX, max);
        goto out;
    }
    it = calloc(max, sizeof(*it));
    if (it == NULL) {
        q_failx(q, err, errlen, "store: out of memory");
        goto out;
    }
    memset(&g, 0, sizeof(g));
    g.fn = group;
    g.arg = group_arg;
    /* Pick with a plain read (a long skipped backlog must not be walked
     * under the write lock), then take what is still due; if other
     * claimers took all of it meanwhile, pick again. */
    for (tries = 0;; tries++) {
        r = mail_pick(q, now, &g, max, it, &n, err, errlen);
        if (r != Q_OK) {
            result = r;
            goto out;
        }
        if (tx_begin(q, err, errlen) != Q_OK)
            goto out;
        began = 1;
        r = mail_take_all(q, it, &n, now, now + lease_ms, at, err, errlen);
        if (r == Q_OK)
            break;
        began = 0;
        tx_rollback(q);
        if (r != Q_NOTFOUND || tries == CLAIM_TRIES) {
            result = r;
            goto out;
        }
    }
    /* Everything is copied before the commit, so that no read transaction
     * stays open while the callbacks send it. */
    for (i = 0; i < n; i++)
        if (mail_load(q, &it[i], at, err, errlen) != Q_OK)
            goto out;
    began = 0;
    if (tx_commit(q, err, errlen) != Q_OK)
        goto out;
    if (claimed != NULL)
        *claimed = n;
    for (i = 0; cb != NULL && i < n; i++)
        cb(arg, &it[i].m);
    result = Q_OK;
out:
    for (i = 0; it != NULL && i < max; i++)
        free(it[i].buf);
    free(it);
    if (began || (result == Q_ERR && q != NULL && q->db != NULL &&
                  !sqlite3_get_autocommit(q->db)))
        tx_rollback(q);
    return result;
}

struct skip_list {
    const char *const *partner;
    size_t n;
};

/* skip_group - queue_mail_claim's grouping: skipped partners or group 0 */
static int
skip_group(void *arg, const char *partner)
{
    const struct skip_list *s = arg;
    size_t i;

    for (i = 0; i < s->n; i++)
        if (s->partner[i] != NULL && strcmp(s->partner[i], partner) == 0)
            return -1;
    return 0;
}

int
queue_mail_claim(struct queue *q, int64_t now, int64_t lease_ms,
                 const char *const *skip, size_t nskip,
                 q_mail_cb cb, void *arg, char *err, size_t errlen)
{
    struct skip_list s = { skip, nskip };

    if (nskip > 0 && skip == NULL)
        return q_failx(q, err, errlen, "store: claim with a missing skip "
                       "list");
    return queue_mail_claim_batch(q, now, lease_ms, 1, skip_group, &s, cb,
                                  arg, NULL, err, errlen);
}

/* outcome_check - o is something a push worker may record */
static int
outcome_check(struct queue *q, const struct q_mail_outcome *o, char *err,
              size_t errlen)
{
    if (o->state != Q_DELIVERED && o->state != Q_DEFERRED &&
        o->state != Q_DEAD)
        return q_failx(q, err, errlen, "store: %s is not a mail outcome",
                       q_state_name(o->state));
    if (o->state == Q_DEFERRED && o->next_ms <= 0)
        return q_failx(q, err, errlen, "store: deferred mail needs the time "
                       "of the next attempt");
    return Q_OK;
}

/* mail_record - in the open transaction: o's delivery takes its outcome
 * if it is still sending (o->result says whether it was) */
static int
mail_record(struct queue *q, struct q_mail_outcome *o, int64_t at,
            char *err, size_t errlen)
{
    sqlite3_stmt *st = NULL;
    const char *error = o->error != NULL ? o->error : "", *note;
    int64_t next = o->state == Q_DEFERRED ? o->next_ms : 0;
    int result = Q_ERR, rc, elen, nlen;

    elen = text_cut(error, Q_ERROR_MAX - 1);
    note = error;
    nlen = elen;
    if (elen == 0 && o->state == Q_DELIVERED) {
        note = "delivered";
        nlen = 9;
    }
    if (stmt_get(q, ST_MAIL_DONE, &st, err, errlen) != Q_OK)
        goto out;
    sqlite3_bind_int(st, 1, o->state);
    sqlite3_bind_int64(st, 2, next);
    sqlite3_bind_text(st, 3, error, elen, SQLITE_STATIC);
    sqlite3_bind_int64(st, 4, at);
    sqlite3_bind_int64(st, 5, o->delivery_id);
    rc = sqlite3_step(st);
    if (rc != SQLITE_DONE) {
        q_fail(q, rc, "record the mail outcome", err, errlen);
        goto out;
    }
    if (sqlite3_changes(q->db) == 0) {
        o->result = Q_NOTFOUND;
        result = Q_OK;
        goto out;
    }
    stmt_done(st);
    st = NULL;
    if (event_add(q, o->delivery_id, at, o->state, note, nlen, err,
                  errlen) != Q_OK)
        goto out;
    o->result = Q_OK;
    result = Q_OK;
out:
    stmt_done(st);
    return result;
}

int
queue_mail_done_batch(struct queue *q, struct q_mail_outcome *o, size_t n,
                      char *err, size_t errlen)
{
    int64_t at = now_ms();
    int result = Q_ERR, began = 0;
    size_t i;

    for (i = 0; i < n; i++)
        o[i].result = Q_ERR;
    for (i = 0; i < n; i++)
        if (outcome_check(q, &o[i], err, errlen) != Q_OK)
            goto out;
    if (n == 0)
        return Q_OK;
    if (tx_begin(q, err, errlen) != Q_OK)
        goto out;
    began = 1;
    for (i = 0; i < n; i++)
        if (mail_record(q, &o[i], at, err, errlen) != Q_OK)
            goto out;
    began = 0;
    if (tx_commit(q, err, errlen) != Q_OK)
        goto out;
    result = Q_OK;
out:
    if (result != Q_OK)
        for (i = 0; i < n; i++)
            o[i].result = Q_ERR;
    if (began || (result == Q_ERR && q != NULL && q->db != NULL &&
                  !sqlite3_get_autocommit(q->db)))
        tx_rollback(q);
    return result;
}

int
queue_mail_done(struct queue *q, int64_t delivery_id, int state,
                int64_t next, const char *error, char *err, size_t errlen)
{
    struct q_mail_outcome o;
    int r;

    memset(&o, 0, sizeof(o));
    o.delivery_id = delivery_id;
    o.state = state;
    o.next_ms = next;
    o.error = error;
    r = queue_mail_done_batch(q, &o, 1, err, errlen);
    return r != Q_OK ? r : o.result;
}

/* op_step - bind the shared parameters (as far as st has them: ?1 cert_id
 * or NULL, ?2 partner or NULL, ?3 at, ?4 now) and run st; *changed is
 * the number of rows it changed */
static int
op_step(struct queue *q, enum stmt_id id, sqlite3_int64 cert_id,
        const char *partner, int64_t at, int64_t now, const char *step,
        int *changed, char *err, size_t errlen)
{
    sqlite3_stmt *st = NULL;
    int result = Q_ERR, rc, np;

    if (stmt_get(q, id, &st, err, errlen) != Q_OK)
        goto out;
    np = sqlite3_bind_parameter_count(st);
    if (np >= 1) {
        if (cert_id > 0)
            sqlite3_bind_int64(st, 1, cert_id);
        else
            sqlite3_bind_null(st, 1);
    }
    if (np >= 2) {
        if (partner != NULL)
            sqlite3_bind_text(st, 2, partner, -1, SQLITE_STATIC);
        else
            sqlite3_bind_null(st, 2);
    }
    if (np >= 3)
        sqlite3_bind_int64(st, 3, at);
    if (np >= 4)
        sqlite3_bind_int64(st, 4, now);
    rc = sqlite3_step(st);
    if (rc != SQLITE_DONE) {
        q_fail(q, rc, step, err, errlen);
        goto out;
    }
    if (changed != NULL)
        *changed = sqlite3_changes(q->db);
    result = Q_OK;
out:
    stmt_done(st);
    return result;
}

int
queue_mail_recover(struct queue *q, int64_t now, int *n, char *err,
                   size_t errlen)
{
    int64_t at = now_ms();
    int result = Q_ERR, began = 0, changed = 0;

    if (n != NULL)
        *n = 0;
    if (now <= 0) {
        q_failx(q, err, errlen, "store: recovery without a valid time");
        goto out;
    }
    if (tx_begin(q, err, errlen) != Q_OK)
        goto out;
    began = 1;
    if (op_step(q, ST_RECOVER_EV, 0, NULL, at, now, "record the recovery",
                NULL, err, errlen) != Q_OK ||
        op_step(q, ST_RECOVER, 0, NULL, at, now, "recover interrupted mail",
                &changed, err, errlen) != Q_OK)
        goto out;
    began = 0;
    if (tx_commit(q, err, errlen) != Q_OK)
        goto out;
    if (n != NULL)
        *n = changed;
    result = Q_OK;
out:
    if (began || (result == Q_ERR && q != NULL && q->db != NULL &&
                  !sqlite3_get_autocommit(q->db)))
        tx_rollback(q);
    return result;
}

int
queue_mail_next_due(struct queue *q, int64_t *next, char *err,
                    size_t errlen)
{
    sqlite3_stmt *st = NULL;
    int result = Q_ERR, rc;

    *next = 0;
    if (stmt_get(q, ST_MAIL_NEXT, &st, err, errlen) != Q_OK)
        goto out;
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        *next = sqlite3_column_int64(st, 0);
    } else if (rc != SQLITE_DONE) {
        q_fail(q, rc, "find the next due mail", err, errlen);
        goto out;
    }
    result = Q_OK;
out:
    stmt_done(st);
    return result;
}

/* ---- operator repair ---------------------------------------------------- */

/* cert_find - the certificate id of tracking (Q_NOTFOUND if none) */
static int
cert_find(struct queue *q, const char *tracking, sqlite3_int64 *cert_id,
          char *err, size_t errlen)
{
    sqlite3_stmt *st = NULL;
    int result = Q_ERR, rc;

    *cert_id = 0;
    if (stmt_get(q, ST_CERT_ID, &st, err, errlen) != Q_OK)
        goto out;
    sqlite3_bind_text(st, 1, tracking, -1, SQLITE_STATIC);
    rc = sqlite3_step(st);
    if (rc == SQLITE_DONE) {
        result = Q_NOTFOUND;
        goto out;
    }
    if (rc != SQLITE_ROW) {
        q_fail(q, rc, "find the certificate", err, errlen);
        goto out;
    }
    *cert_id = sqlite3_column_int64(st, 0);
    result = Q_OK;
out:
    stmt_done(st);
    return result;
}

/* op_verb - run the event statement ev, then the change statement upd, on
 * the deliveries of tracking or of partner, in one transaction */
static int
op_verb(struct queue *q, const char *tracking, const char *partner,
        int64_t now, enum stmt_id ev, enum stmt_id upd, const char *what,
        int *n, char *err, size_t errlen)
{
    sqlite3_int64 cert_id = 0;
    int64_t at = now_ms();
    int result = Q_ERR, began = 0, changed = 0, r;

    if (n != NULL)
        *n = 0;
    if ((tracking == NULL) == (partner == NULL)) {
        q_failx(q, err, errlen, "store: %s needs either a tracking number "
                "or a partner id", what);
        goto out;
    }
    if (partner != NULL && !partner_ok(partner)) {
        q_failx(q, err, errlen, "store: no valid partner id given");
        goto out;
    }
    if (now <= 0) {
        q_failx(q, err, errlen, "store: %s without a valid time", what);
        goto out;
    }
    if (tracking != NULL && !tracking_ok(tracking)) {
        result = Q_NOTFOUND;
        goto out;
    }
    if (tx_begin(q, err, errlen) != Q_OK)
        goto out;
    began = 1;
    if (tracking != NULL) {
        r = cert_find(q, tracking, &cert_id, err, errlen);
        if (r != Q_OK) {
            result = r;
            goto out;
        }
    }
    if (op_step(q, ev, cert_id, partner, at, now, "record the history",
                NULL, err, errlen) != Q_OK ||
        op_step(q, upd, cert_id, partner, at, now, what, &changed, err,
                errlen) != Q_OK)
        goto out;
    began = 0;
    if (tx_commit(q, err, errlen) != Q_OK)
        goto out;
    if (n != NULL)
        *n = changed;
    result = Q_OK;
out:
    if (began || (result == Q_ERR && q != NULL && q->db != NULL &&
                  !sqlite3_get_autocommit(q->db)))
        tx_rollback(q);
    return result;
}

int
queue_op_retry(struct queue *q, const char *tracking, const char *partner,
               int64_t now, int *n, char *err, size_t errlen)
{
    return op_verb(q, tracking, partner, now, ST_RETRY_EV, ST_RETRY,
                   "retry", n, err, errlen);
}

int
queue_op_hold(struct queue *q, const char *tracking, const char *partner,
              int *n, char *err, size_t errlen)
{
    /* a hold schedules nothing; the time is not used */
    return op_verb(q, tracking, partner, now_ms(), ST_HOLD_EV, ST_HOLD,
                   "hold", n, err, errlen);
}

int
queue_op_release(struct queue *q, const char *tracking, const char *partner,
                 int64_t now, int *n, char *err, size_t errlen)
{
    return op_verb(q, tracking, partner, now, ST_RELEASE_EV, ST_RELEASE,
                   "release", n, err, errlen);
}

int
queue_op_purge(struct queue *q, const char *tracking, int *n, char *err,
               size_t errlen)
{
    sqlite3_int64 cert_id = 0;
    int result = Q_ERR, began = 0, changed = 0, r;

    if (n != NULL)
        *n = 0;
    if (!tracking_ok(tracking)) {
        result = Q_NOTFOUND;
        goto out;
    }
    if (tx_begin(q, err, errlen) != Q_OK)
        goto out;
    began = 1;
    r = cert_find(q, tracking, &cert_id, err, errlen);
    if (r != Q_OK) {
        result = r;
        goto out;
    }
    if (op_step(q, ST_PURGE_EV, cert_id, NULL, 0, 0, "delete the history",
                NULL, err, errlen) != Q_OK ||
        op_step(q, ST_PURGE, cert_id, NULL, 0, 0, "purge", &changed, err,
                errlen) != Q_OK)
        goto out;
    began = 0;
    if (tx_commit(q, err, errlen) != Q_OK)
        goto out;
    if (n != NULL)
        *n = changed;
    result = Q_OK;
out:
    if (began || (result == Q_ERR && q != NULL && q->db != NULL &&
                  !sqlite3_get_autocommit(q->db)))
        tx_rollback(q);
    return result;
}

/* ---- test hook ---------------------------------------------------------- */

int
queue_explain(struct queue *q, const char *which, char *plan, size_t planlen)
{
    static const struct {
        const char *name;
        enum stmt_id id;
    } map[] = {
        { "pull", ST_PULL },
        { "headers", ST_HEADERS },
        { "lookup", ST_MAXVER },
        { "duplicate", ST_DUP },
        { "status", ST_STATUS },
        { "status_v1", ST_STATUS_V1 },
        { "track", ST_TRACK },
        { "ack", ST_ACK_FIND },
        { "pull_one", ST_PULL_ONE },
        { "show", ST_SHOW_CERT },
        { "mail_claim", ST_MAIL_DUE },
        { "mail_next", ST_MAIL_NEXT },
    };
    sqlite3_stmt *st = NULL;
    char *sql = NULL;
    size_t i, used = 0;
    int result = Q_ERR, rc, n;

    if (plan == NULL || planlen == 0)
        goto out;
    plan[0] = '\0';
    for (i = 0; i < sizeof(map) / sizeof(map[0]); i++)
        if (which != NULL && strcmp(which, map[i].name) == 0)
            break;
    if (i == sizeof(map) / sizeof(map[0])) {
        snprintf(plan, planlen, "unknown query %s", which ? which : "(null)");
        goto out;
    }
    sql = sqlite3_mprintf("EXPLAIN QUERY PLAN %s", stmt_sql[map[i].id]);
    if (sql == NULL)
        goto out;
    rc = sqlite3_prepare_v2(q->db, sql, -1, &st, NULL);
    if (rc != SQLITE_OK) {
        snprintf(plan, planlen, "%s", sqlite3_errmsg(q->db));
        goto out;
    }
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        n = snprintf(plan + used, planlen - used, "%s\n", col_text(st, 3));
        if (n < 0 || (size_t)n >= planlen - used)
            goto out;
        used += (size_t)n;
    }
    if (rc != SQLITE_DONE)
        goto out;
    result = Q_OK;
out:
    sqlite3_finalize(st);
    sqlite3_free(sql);
    return result;
}
