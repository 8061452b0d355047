/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * test_queue.c - unit tests of the SQLite store behind queue.h.
 *
 * Each test gets a fresh store in its own mkdtemp() directory under /tmp,
 * removed afterwards.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dirent.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <sqlite3.h>

#include "queue.h"

#define MAXROWS 32

struct fixture {
    char dir[64];
    char path[96];
    struct queue *q;
    char err[512];
};

/* ---- fixture ------------------------------------------------------------ */

static void
rm_dir(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    char p[512];

    if (d == NULL)
        return;
    while ((de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        snprintf(p, sizeof(p), "%s/%s", dir, de->d_name);
        unlink(p);
    }
    closedir(d);
    rmdir(dir);
}

static int
setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));

    if (f == NULL)
        return -1;
    snprintf(f->dir, sizeof(f->dir), "/tmp/test_queue.XXXXXX");
    if (mkdtemp(f->dir) == NULL) {
        free(f);
        return -1;
    }
    snprintf(f->path, sizeof(f->path), "%s/store.db", f->dir);
    if (queue_open(&f->q, f->path, 0, f->err, sizeof(f->err)) != Q_OK) {
        fprintf(stderr, "queue_open: %s\n", f->err);
        rm_dir(f->dir);
        free(f);
        return -1;
    }
    queue_set_sync(f->q, 0);
    *state = f;
    return 0;
}

static int
teardown(void **state)
{
    struct fixture *f = *state;

    queue_close(f->q);
    rm_dir(f->dir);
    free(f);
    return 0;
}

/* ---- helpers ------------------------------------------------------------ */

struct seen {
    int n;
    int stop_after;                  /* 0: never stop */
    char tracking[MAXROWS][Q_TRACKING_MAX];
    char number[MAXROWS][Q_NUMBER_MAX];
    char from[MAXROWS][8], to[MAXROWS][8], sender[MAXROWS][Q_PARTNER_MAX];
    char last_error[MAXROWS][Q_ERROR_MAX];
    int state[MAXROWS], version[MAXROWS], type[MAXROWS], status[MAXROWS];
    int had_content[MAXROWS];
    unsigned char content[MAXROWS][256];
    size_t content_len[MAXROWS];
    unsigned char sha256[MAXROWS][32];
    int64_t received_ms[MAXROWS];
};

static int
env_cb(void *arg, const struct q_envelope *e)
{
    struct seen *s = arg;
    int i = s->n;

    if (s->stop_after > 0 && s->n >= s->stop_after)
        return 1;
    assert_true(i < MAXROWS);
    snprintf(s->tracking[i], Q_TRACKING_MAX, "%s", e->tracking);
    snprintf(s->number[i], Q_NUMBER_MAX, "%s", e->number);
    snprintf(s->from[i], 8, "%s", e->from);
    snprintf(s->to[i], 8, "%s", e->to);
    snprintf(s->sender[i], Q_PARTNER_MAX, "%s", e->sender);
    snprintf(s->last_error[i], Q_ERROR_MAX, "%s", e->last_error);
    s->state[i] = e->state;
    s->version[i] = e->version;
    s->type[i] = e->type;
    s->status[i] = e->status;
    s->received_ms[i] = e->received_ms;
    assert_non_null(e->sha256);
    memcpy(s->sha256[i], e->sha256, 32);
    s->had_content[i] = e->content != NULL;
    s->content_len[i] = e->content_len;
    if (e->content != NULL) {
        assert_true(e->content_len <= sizeof(s->content[i]));
        memcpy(s->content[i], e->content, e->content_len);
    }
    s->n++;
    return 0;
}

static const struct q_addressee to_a[] = { { "ppa", Q_CH_PULL } };
static const struct q_addressee to_ab[] = {
    { "ppa", Q_CH_PULL }, { "ppb", Q_CH_PULL }
};

/* handin - hand in content from "NL" to "DE" by sender "nl-gw" */
static int
handin(struct fixture *f, const char *number, const void *content,
       size_t len, const struct q_addressee *to, size_t nto,
       char *tracking, int *dup)
{
    struct q_handin in = {
        .from = "NL", .to = "DE", .type = 851, .status = 70,
        .number = number, .sender = "nl-gw",
        .content = content, .content_len = len,
        .to_partners = to, .nto = nto,
    };
    int d = 0;

    return queue_handin(f->q, &in, tracking, dup != NULL ? dup : &d,
                        f->err, sizeof(f->err));
}

static void
handin_ok(struct fixture *f, const char *number, const char *content,
          const struct q_addressee *to, size_t nto, char *tracking)
{
    int dup = -1;

    assert_int_equal(handin(f, number, content, strlen(content), to, nto,
                            tracking, &dup), Q_OK);
    assert_int_equal(dup, 0);
}

static int
track_state(struct fixture *f, const char *partner, const char *tracking)
{
    struct seen s;

    memset(&s, 0, sizeof(s));
    assert_int_equal(queue_track(f->q, partner, tracking, env_cb, &s,
                                 f->err, sizeof(f->err)), Q_OK);
    assert_int_equal(s.n, 1);
    return s.state[0];
}

struct dels {
    int n;
    char tracking[MAXROWS][Q_TRACKING_MAX];
    char partner[MAXROWS][Q_PARTNER_MAX];
    char last_error[MAXROWS][Q_ERROR_MAX];
    int channel[MAXROWS], state[MAXROWS], pull_count[MAXROWS];
    int version[MAXROWS], attempts[MAXROWS];
    int64_t pulled_ms[MAXROWS], next_attempt_ms[MAXROWS];
};

static int
del_cb(void *arg, const struct q_delivery *d)
{
    struct dels *s = arg;
    int i = s->n;

    assert_true(i < MAXROWS);
    snprintf(s->tracking[i], Q_TRACKING_MAX, "%s", d->tracking);
    snprintf(s->partner[i], Q_PARTNER_MAX, "%s", d->partner);
    snprintf(s->last_error[i], Q_ERROR_MAX, "%s", d->last_error);
    s->channel[i] = d->channel;
    s->state[i] = d->state;
    s->pull_count[i] = d->pull_count;
    s->pulled_ms[i] = d->pulled_ms;
    s->next_attempt_ms[i] = d->next_attempt_ms;
    s->version[i] = d->version;
    s->attempts[i] = d->attempts;
    s->n++;
    return 0;
}

static void
list(struct fixture *f, const char *partner, int state, int channel,
     int limit, struct dels *out)
{
    struct q_filter flt = { partner, state, channel, limit };

    memset(out, 0, sizeof(*out));
    assert_int_equal(queue_op_list(f->q, &flt, del_cb, out, f->err,
                                   sizeof(f->err)), Q_OK);
}

/* ---- tests -------------------------------------------------------------- */

static void
test_names(void **state)
{
    int i;

    (void)state;
    for (i = 0; i < Q_NSTATES; i++)
        assert_int_equal(q_state_parse(q_state_name(i)), i);
    assert_string_equal(q_state_name(Q_DELIVERED_WARNINGS),
                        "delivered_warnings");
    assert_string_equal(q_state_name(99), "?");
    assert_int_equal(q_state_parse("bogus"), -1);
    assert_int_equal(q_channel_parse("pull"), Q_CH_PULL);
    assert_int_equal(q_channel_parse("smtp"), Q_CH_SMTP);
    assert_int_equal(q_channel_parse("x"), -1);
    assert_string_equal(q_channel_name(Q_CH_SMTP), "smtp");
    assert_false(q_state_final(Q_WAITING));
    assert_false(q_state_final(Q_HELD));
    assert_false(q_state_final(Q_DEFERRED));
    assert_true(q_state_final(Q_DELIVERED));
    assert_true(q_state_final(Q_FAILED));
    assert_true(q_state_final(Q_DEAD));
}

static void
test_handin_and_pull_bytes(void **state)
{
    struct fixture *f = *state;
    static const unsigned char body[] =
        "<?xml version=\"1.0\"?>\r\n<a>\0b\r\n\0\0\xff\xfe</a>\r\n";
    char t[Q_TRACKING_MAX];
    struct seen s;
    size_t i;
    int dup = -1;

    assert_int_equal(handin(f, "NL-001", body, sizeof(body), to_a, 1, t,
                            &dup), Q_OK);
    assert_int_equal(dup, 0);
    /* ECG + YYYYMMDD + - + 16 lower-case hex */
    assert_int_equal(strlen(t), 28);
    assert_memory_equal(t, "ECG", 3);
    assert_int_equal(t[11], '-');
    for (i = 12; i < 28; i++)
        assert_non_null(strchr("0123456789abcdef", t[i]));

    memset(&s, 0, sizeof(s));
    assert_int_equal(queue_headers(f->q, "ppa", 10, env_cb, &s, f->err,
                                   sizeof(f->err)), Q_OK);
    assert_int_equal(s.n, 1);
    assert_false(s.had_content[0]);
    assert_string_equal(s.tracking[0], t);
    assert_string_equal(s.number[0], "NL-001");
    assert_string_equal(s.from[0], "NL");
    assert_string_equal(s.to[0], "DE");
    assert_string_equal(s.sender[0], "nl-gw");
    assert_int_equal(s.type[0], 851);
    assert_int_equal(s.status[0], 70);
    assert_int_equal(s.version[0], 1);
    assert_int_equal(s.state[0], Q_WAITING);
    assert_string_equal(s.last_error[0], "");
    assert_true(s.received_ms[0] > (int64_t)time(NULL) * 1000 - 60000);

    memset(&s, 0, sizeof(s));
    assert_int_equal(queue_pull(f->q, "ppa", 10, env_cb, &s, f->err,
                                sizeof(f->err)), Q_OK);
    assert_int_equal(s.n, 1);
    assert_true(s.had_content[0]);
    assert_int_equal(s.content_len[0], sizeof(body));
    assert_memory_equal(s.content[0], body, sizeof(body));
    /* pull_one reports the same bytes and digest */
    {
        struct seen s1;

        memset(&s1, 0, sizeof(s1));
        assert_int_equal(queue_pull_one(f->q, "ppa", t, env_cb, &s1, f->err,
                                        sizeof(f->err)), Q_OK);
        assert_int_equal(s1.n, 1);
        assert_int_equal(s1.content_len[0], sizeof(body));
        assert_memory_equal(s1.content[0], body, sizeof(body));
        assert_memory_equal(s1.sha256[0], s.sha256[0], 32);
    }
}

static void
test_sha256_known(void **state)
{
    struct fixture *f = *state;
    /* SHA-256("abc") */
    static const unsigned char abc[32] = {
        0xba, 0x78, 0x16, 0xbf, 0x8f, 0x01, 0xcf, 0xea, 0x41, 0x41, 0x40,
        0xde, 0x5d, 0xae, 0x22, 0x23, 0xb0, 0x03, 0x61, 0xa3, 0x96, 0x17,
        0x7a, 0x9c, 0xb4, 0x10, 0xff, 0x61, 0xf2, 0x00, 0x15, 0xad
    };
    char t[Q_TRACKING_MAX];
    struct seen s;

    handin_ok(f, "N1", "abc", to_a, 1, t);
    memset(&s, 0, sizeof(s));
    assert_int_equal(queue_headers(f->q, "ppa", 1, env_cb, &s, f->err,
                                   sizeof(f->err)), Q_OK);
    assert_int_equal(s.n, 1);
    assert_memory_equal(s.sha256[0], abc, 32);
}

static void
test_state_machine(void **state)
{
    struct fixture *f = *state;
    static const int acks[] = {
        Q_DELIVERED, Q_DELIVERED_WARNINGS, Q_NOT_READABLE, Q_FAILED
    };
    char t[Q_TRACKING_MAX], num[16];
    struct seen s;
    struct dels d;
    size_t i;

    for (i = 0; i < sizeof(acks) / sizeof(acks[0]); i++) {
        snprintf(num, sizeof(num), "SM-%zu", i);
        handin_ok(f, num, "<x/>", to_a, 1, t);
        assert_int_equal(track_state(f, "ppa", t), Q_WAITING);

        /* pulled but not acknowledged: offered again */
        memset(&s, 0, sizeof(s));
        assert_int_equal(queue_pull(f->q, "ppa", 10, env_cb, &s, f->err,
                                    sizeof(f->err)), Q_OK);
        assert_int_equal(s.n, 1);
        memset(&s, 0, sizeof(s));
        assert_int_equal(queue_pull(f->q, "ppa", 10, env_cb, &s, f->err,
                                    sizeof(f->err)), Q_OK);
        assert_int_equal(s.n, 1);
        assert_string_equal(s.tracking[0], t);
        list(f, "ppa", Q_WAITING, Q_CH_PULL, 0, &d);
        assert_int_equal(d.n, 1);
        assert_int_equal(d.pull_count[0], 2);
        assert_true(d.pulled_ms[0] > 0);

        assert_int_equal(queue_ack(f->q, "ppa", t, acks[i], "note",
                                   f->err, sizeof(f->err)), Q_OK);
        assert_int_equal(track_state(f, "ppa", t), acks[i]);
        list(f, "ppa", acks[i], 0, 0, &d);
        assert_int_equal(d.n, 1);
        assert_string_equal(d.last_error[0], "note");

        /* idempotent: a second ack, even another state, changes nothing */
        assert_int_equal(queue_ack(f->q, "ppa", t,
                                   acks[i] == Q_FAILED ? Q_DELIVERED :
                                   Q_FAILED, "other", f->err,
                                   sizeof(f->err)), Q_OK);
        assert_int_equal(track_state(f, "ppa", t), acks[i]);
        list(f, "ppa", acks[i], 0, 0, &d);
        assert_string_equal(d.last_error[0], "note");

        /* gone from what is waiting */
        memset(&s, 0, sizeof(s));
        assert_int_equal(queue_pull(f->q, "ppa", 10, env_cb, &s, f->err,
                                    sizeof(f->err)), Q_OK);
        assert_int_equal(s.n, 0);
        memset(&s, 0, sizeof(s));
        assert_int_equal(queue_headers(f->q, "ppa", 10, env_cb, &s, f->err,
                                       sizeof(f->err)), Q_OK);
        assert_int_equal(s.n, 0);
        /* but still reachable one by one */
        memset(&s, 0, sizeof(s));
        assert_int_equal(queue_pull_one(f->q, "ppa", t, env_cb, &s, f->err,
                                        sizeof(f->err)), Q_OK);
        assert_int_equal(s.n, 1);
        assert_int_equal(s.state[0], acks[i]);
    }
}

static void
test_ack_rules(void **state)
{
    struct fixture *f = *state;
    static const struct q_addressee mail[] = { { "ppm", Q_CH_SMTP } };
    char t[Q_TRACKING_MAX], tm[Q_TRACKING_MAX], big[2000];
    struct dels d;

    handin_ok(f, "AR-1", "<x/>", to_a, 1, t);
    /* not an acknowledgement state */
    assert_int_equal(queue_ack(f->q, "ppa", t, Q_WAITING, NULL, f->err,
                               sizeof(f->err)), Q_ERR);
    assert_int_equal(queue_ack(f->q, "ppa", t, Q_DEAD, NULL, f->err,
                               sizeof(f->err)), Q_ERR);
    assert_false(queue_err_transient(f->q));
    /* unknown tracking */
    assert_int_equal(queue_ack(f->q, "ppa", "ECG20000101-0000000000000000",
                               Q_DELIVERED, NULL, f->err, sizeof(f->err)),
                     Q_NOTFOUND);
    /* mail deliveries cannot be acknowledged by pull */
    handin_ok(f, "AR-2", "<y/>", mail, 1, tm);
    assert_int_equal(queue_ack(f->q, "ppm", tm, Q_DELIVERED, NULL, f->err,
                               sizeof(f->err)), Q_NOTFOUND);
    list(f, "ppm", -1, 0, 0, &d);
    assert_int_equal(d.n, 1);
    assert_int_equal(d.state[0], Q_WAITING);
    assert_int_equal(d.channel[0], Q_CH_SMTP);
    assert_true(d.next_attempt_ms[0] > 0);       /* mail is due at once */

    /* the message is kept, cut to Q_ERROR_MAX - 1 bytes */
    memset(big, 'm', sizeof(big));
    big[sizeof(big) - 1] = '\0';
    assert_int_equal(queue_ack(f->q, "ppa", t, Q_NOT_READABLE, big, f->err,
                               sizeof(f->err)), Q_OK);
    list(f, "ppa", -1, 0, 0, &d);
    assert_int_equal(d.n, 1);
    assert_int_equal(strlen(d.last_error[0]), Q_ERROR_MAX - 1);
    assert_int_equal(d.state[0], Q_NOT_READABLE);
}

static void
test_duplicate(void **state)
{
    struct fixture *f = *state;
    char t1[Q_TRACKING_MAX], t2[Q_TRACKING_MAX];
    struct dels d;
    int dup = -1;

    handin_ok(f, "DUP-1", "<same/>", to_ab, 2, t1);
    assert_int_equal(handin(f, "DUP-1", "<same/>", 7, to_ab, 2, t2, &dup),
                     Q_OK);
    assert_int_equal(dup, 1);
    assert_string_equal(t1, t2);
    list(f, NULL, -1, 0, 0, &d);
    assert_int_equal(d.n, 2);               /* nothing new stored */
    /* same content, another number: not a duplicate */
    assert_int_equal(handin(f, "DUP-2", "<same/>", 7, to_ab, 2, t2, &dup),
                     Q_OK);
    assert_int_equal(dup, 0);
    assert_string_not_equal(t1, t2);
}

static void
test_replacement(void **state)
{
    struct fixture *f = *state;
    char t1[Q_TRACKING_MAX], t2[Q_TRACKING_MAX], t3[Q_TRACKING_MAX];
    struct seen s;
    struct dels d;
    int dup = -1;

    handin_ok(f, "REP-1", "<v1/>", to_a, 1, t1);
    assert_int_equal(queue_ack(f->q, "ppa", t1, Q_DELIVERED, NULL, f->err,
                               sizeof(f->err)), Q_OK);
    handin_ok(f, "REP-1", "<v2/>", to_ab, 2, t2);
    assert_string_not_equal(t1, t2);
    list(f, NULL, -1, 0, 0, &d);
    assert_int_equal(d.n, 3);
    assert_int_equal(d.version[0], 1);
    assert_int_equal(d.version[1], 2);
    assert_int_equal(d.version[2], 2);
    assert_string_equal(d.tracking[1], t2);
    assert_string_equal(d.tracking[2], t2);
    assert_int_equal(d.state[1], Q_WAITING);
    memset(&s, 0, sizeof(s));
    assert_int_equal(queue_pull(f->q, "ppa", 10, env_cb, &s, f->err,
                                sizeof(f->err)), Q_OK);
    assert_int_equal(s.n, 1);
    assert_int_equal(s.version[0], 2);
    assert_string_equal(s.tracking[0], t2);
    assert_memory_equal(s.content[0], "<v2/>", 5);
    /* version 1's content again is a duplicate of version 1 */
    assert_int_equal(handin(f, "REP-1", "<v1/>", 5, to_a, 1, t3, &dup),
                     Q_OK);
    assert_int_equal(dup, 1);
    assert_string_equal(t3, t1);
    /* a third content is version 3 */
    handin_ok(f, "REP-1", "<v3/>", to_a, 1, t3);
    memset(&s, 0, sizeof(s));
    assert_int_equal(queue_track(f->q, "ppa", t3, env_cb, &s, f->err,
                                 sizeof(f->err)), Q_OK);
    assert_int_equal(s.version[0], 3);
}

static void
test_isolation(void **state)
{
    struct fixture *f = *state;
    static const struct q_addressee to_c[] = { { "ppc", Q_CH_PULL } };
    char ta[Q_TRACKING_MAX], tc[Q_TRACKING_MAX], e1[512], e2[512];
    const char *missing = "ECG20240101-00000000deadbeef";
    struct seen s;
    struct dels d;

    handin_ok(f, "ISO-1", "<for-a/>", to_a, 1, ta);
    handin_ok(f, "ISO-2", "<for-c/>", to_c, 1, tc);

    memset(&s, 0, sizeof(s));
    assert_int_equal(queue_headers(f->q, "ppb", 10, env_cb, &s, f->err,
                                   sizeof(f->err)), Q_OK);
    assert_int_equal(s.n, 0);
    assert_int_equal(queue_pull(f->q, "ppb", 10, env_cb, &s, f->err,
                                sizeof(f->err)), Q_OK);
    assert_int_equal(s.n, 0);
    assert_int_equal(queue_pull_one(f->q, "ppb", ta, env_cb, &s, f->err,
                                    sizeof(f->err)), Q_NOTFOUND);
    assert_int_equal(queue_track(f->q, "ppb", ta, env_cb, &s, f->err,
                                 sizeof(f->err)), Q_NOTFOUND);
    assert_int_equal(s.n, 0);
    /* not yours and does not exist: the same answer, same err text */
    snprintf(f->err, sizeof(f->err), "untouched");
    assert_int_equal(queue_ack(f->q, "ppb", ta, Q_DELIVERED, "x", f->err,
                               sizeof(f->err)), Q_NOTFOUND);
    snprintf(e1, sizeof(e1), "%s", f->err);
    snprintf(f->err, sizeof(f->err), "untouched");
    assert_int_equal(queue_ack(f->q, "ppb", missing, Q_DELIVERED, "x",
                               f->err, sizeof(f->err)), Q_NOTFOUND);
    snprintf(e2, sizeof(e2), "%s", f->err);
    assert_string_equal(e1, e2);
    assert_int_equal(queue_pull_one(f->q, "ppb", missing, env_cb, &s, f->err,
                                    sizeof(f->err)), Q_NOTFOUND);
    assert_int_equal(queue_track(f->q, "ppb", missing, env_cb, &s, f->err,
                                 sizeof(f->err)), Q_NOTFOUND);

    /* a's delivery did not move; pulls by b did not mark it */
    list(f, "ppa", -1, 0, 0, &d);
    assert_int_equal(d.n, 1);
    assert_int_equal(d.state[0], Q_WAITING);
    assert_int_equal(d.pull_count[0], 0);

    /* a sees only its own */
    memset(&s, 0, sizeof(s));
    assert_int_equal(queue_headers(f->q, "ppa", 10, env_cb, &s, f->err,
                                   sizeof(f->err)), Q_OK);
    assert_int_equal(s.n, 1);
    assert_string_equal(s.tracking[0], ta);
    assert_int_equal(queue_pull_one(f->q, "ppa", tc, env_cb, &s, f->err,
                                    sizeof(f->err)), Q_NOTFOUND);
    /* partner ids are matched exactly */
    assert_int_equal(queue_track(f->q, "PPA", ta, env_cb, &s, f->err,
                                 sizeof(f->err)), Q_NOTFOUND);
    assert_int_equal(queue_track(f->q, "ppa%", ta, env_cb, &s, f->err,
                                 sizeof(f->err)), Q_NOTFOUND);
}

static void
test_sender_track(void **state)
{
    struct fixture *f = *state;
    static const struct q_addressee mixed[] = {
        { "ppa", Q_CH_PULL }, { "ppb", Q_CH_PULL }, { "ppa", Q_CH_SMTP }
    };
    char t[Q_TRACKING_MAX];
    struct seen s;

    handin_ok(f, "TR-1", "<t/>", mixed, 3, t);
    memset(&s, 0, sizeof(s));
    assert_int_equal(queue_track(f->q, "nl-gw", t, env_cb, &s, f->err,
                                 sizeof(f->err)), Q_OK);
    assert_int_equal(s.n, 1);
    assert_false(s.had_content[0]);
    assert_string_equal(s.tracking[0], t);
    assert_int_equal(s.state[0], Q_WAITING);

    /* ppa's pull delivered: ppa sees delivered (pull before mail), the
     * sender still waiting (ppb and ppa's mail are not done) */
    assert_int_equal(queue_ack(f->q, "ppa", t, Q_DELIVERED, NULL, f->err,
                               sizeof(f->err)), Q_OK);
    assert_int_equal(track_state(f, "ppa", t), Q_DELIVERED);
    assert_int_equal(track_state(f, "ppb", t), Q_WAITING);
    assert_int_equal(track_state(f, "nl-gw", t), Q_WAITING);

    /* mail still waiting, so the sender sees waiting even after ppb fails */
    assert_int_equal(queue_ack(f->q, "ppb", t, Q_FAILED, "broken", f->err,
                               sizeof(f->err)), Q_OK);
    assert_int_equal(track_state(f, "nl-gw", t), Q_WAITING);

    /* an unrelated partner cannot track */
    assert_int_equal(queue_track(f->q, "ppz", t, env_cb, &s, f->err,
                                 sizeof(f->err)), Q_NOTFOUND);
}

static void
test_sender_summary_ranks(void **state)
{
    struct fixture *f = *state;
    char t[Q_TRACKING_MAX];
    struct seen s;

    handin_ok(f, "RK-1", "<r/>", to_ab, 2, t);
    assert_int_equal(queue_ack(f->q, "ppa", t, Q_DELIVERED, NULL, f->err,
                               sizeof(f->err)), Q_OK);
    assert_int_equal(queue_ack(f->q, "ppb", t, Q_DELIVERED_WARNINGS, "w",
                               f->err, sizeof(f->err)), Q_OK);
    memset(&s, 0, sizeof(s));
    assert_int_equal(queue_track(f->q, "nl-gw", t, env_cb, &s, f->err,
                                 sizeof(f->err)), Q_OK);
    assert_int_equal(s.state[0], Q_DELIVERED_WARNINGS);
    assert_string_equal(s.last_error[0], "w");

    handin_ok(f, "RK-2", "<r/>", to_ab, 2, t);
    assert_int_equal(queue_ack(f->q, "ppa", t, Q_NOT_READABLE, "nr", f->err,
                               sizeof(f->err)), Q_OK);
    assert_int_equal(queue_ack(f->q, "ppb", t, Q_FAILED, "fl", f->err,
                               sizeof(f->err)), Q_OK);
    memset(&s, 0, sizeof(s));
    assert_int_equal(queue_track(f->q, "nl-gw", t, env_cb, &s, f->err,
                                 sizeof(f->err)), Q_OK);
    assert_int_equal(s.state[0], Q_FAILED);
    assert_string_equal(s.last_error[0], "fl");
}

static void
test_limits(void **state)
{
    struct fixture *f = *state;
    char t[5][Q_TRACKING_MAX], num[16];
    struct seen s;
    struct dels d;
    int i;

    for (i = 0; i < 5; i++) {
        snprintf(num, sizeof(num), "LIM-%d", i);
        handin_ok(f, num, num, to_a, 1, t[i]);
    }
    memset(&s, 0, sizeof(s));
    assert_int_equal(queue_headers(f->q, "ppa", 3, env_cb, &s, f->err,
                                   sizeof(f->err)), Q_OK);
    assert_int_equal(s.n, 3);
    for (i = 0; i < 3; i++)
        assert_string_equal(s.tracking[i], t[i]);      /* oldest first */

    memset(&s, 0, sizeof(s));
    assert_int_equal(queue_pull(f->q, "ppa", 2, env_cb, &s, f->err,
                                sizeof(f->err)), Q_OK);
    assert_int_equal(s.n, 2);
    assert_string_equal(s.tracking[0], t[0]);
    assert_string_equal(s.tracking[1], t[1]);
    assert_memory_equal(s.content[1], "LIM-1", 5);

    memset(&s, 0, sizeof(s));
    assert_int_equal(queue_pull(f->q, "ppa", 0, env_cb, &s, f->err,
                                sizeof(f->err)), Q_OK);
    assert_int_equal(s.n, 0);

    /* the callback stops after 3 of 5: only those it took are marked */
    memset(&s, 0, sizeof(s));
    s.stop_after = 3;
    assert_int_equal(queue_pull(f->q, "ppa", 100, env_cb, &s, f->err,
                                sizeof(f->err)), Q_OK);
    assert_int_equal(s.n, 3);
    list(f, "ppa", -1, Q_CH_PULL, 0, &d);
    assert_int_equal(d.n, 5);
    assert_int_equal(d.pull_count[0], 2);
    assert_int_equal(d.pull_count[1], 2);
    assert_int_equal(d.pull_count[2], 1);
    assert_int_equal(d.pull_count[3], 0);
    assert_int_equal(d.pull_count[4], 0);
    assert_true(d.pulled_ms[3] == 0);

    /* after acknowledging the oldest, the next ones move up */
    assert_int_equal(queue_ack(f->q, "ppa", t[0], Q_DELIVERED, NULL, f->err,
                               sizeof(f->err)), Q_OK);
    memset(&s, 0, sizeof(s));
    assert_int_equal(queue_headers(f->q, "ppa", 1, env_cb, &s, f->err,
                                   sizeof(f->err)), Q_OK);
    assert_int_equal(s.n, 1);
    assert_string_equal(s.tracking[0], t[1]);
}

struct status_rows {
    int n;
    char partner[MAXROWS][Q_PARTNER_MAX];
    int channel[MAXROWS], state[MAXROWS];
    int64_t count[MAXROWS], oldest[MAXROWS], next[MAXROWS];
};

static int
status_cb(void *arg, const struct q_status_row *r)
{
    struct status_rows *s = arg;

    assert_true(s->n < MAXROWS);
    snprintf(s->partner[s->n], Q_PARTNER_MAX, "%s", r->partner);
    s->channel[s->n] = r->channel;
    s->state[s->n] = r->state;
    s->count[s->n] = r->count;
    s->oldest[s->n] = r->oldest_ms;
    s->next[s->n] = r->next_attempt_ms;
    s->n++;
    return 0;
}

static void
test_op_status(void **state)
{
    struct fixture *f = *state;
    static const struct q_addressee to_am[] = {
        { "ppa", Q_CH_PULL }, { "ppb", Q_CH_SMTP }
    };
    char t[Q_TRACKING_MAX], num[16];
    struct status_rows s;
    int i;

    for (i = 0; i < 3; i++) {
        snprintf(num, sizeof(num), "ST-%d", i);
        handin_ok(f, num, num, to_am, 2, t);
    }
    assert_int_equal(queue_ack(f->q, "ppa", t, Q_DELIVERED, NULL, f->err,
                               sizeof(f->err)), Q_OK);
    memset(&s, 0, sizeof(s));
    assert_int_equal(queue_op_status(f->q, status_cb, &s, f->err,
                                     sizeof(f->err)), Q_OK);
    assert_int_equal(s.n, 3);
    /* ordered by partner, channel, state */
    assert_string_equal(s.partner[0], "ppa");
    assert_int_equal(s.channel[0], Q_CH_PULL);
    assert_int_equal(s.state[0], Q_WAITING);
    assert_int_equal(s.count[0], 2);
    assert_int_equal(s.next[0], 0);
    assert_true(s.oldest[0] > 0);
    assert_string_equal(s.partner[1], "ppa");
    assert_int_equal(s.state[1], Q_DELIVERED);
    assert_int_equal(s.count[1], 1);
    assert_string_equal(s.partner[2], "ppb");
    assert_int_equal(s.channel[2], Q_CH_SMTP);
    assert_int_equal(s.state[2], Q_WAITING);
    assert_int_equal(s.count[2], 3);
    assert_true(s.next[2] > 0);
}

static int64_t raw_count(const char *path, const char *sql);
static int64_t wall_ms(void);

/* The maintained counts agree with the deliveries (queue_op_check
 * compares them group by group). */
static void
counts_agree(struct fixture *f)
{
    assert_int_equal(queue_op_check(f->q, f->err, sizeof(f->err)), Q_OK);
}

/* The counts follow every kind of change: hand-in, acknowledgement, mail
 * outcome, hold, release, purge. */
static void
test_status_counts(void **state)
{
    struct fixture *f = *state;
    static const struct q_addressee to_am[] = {
        { "ppa", Q_CH_PULL }, { "ppb", Q_CH_SMTP }
    };
    char t[4][Q_TRACKING_MAX], num[16];
    struct status_rows s;
    sqlite3 *raw = NULL;
    int i, n = -1;

    for (i = 0; i < 4; i++) {
        snprintf(num, sizeof(num), "SC-%d", i);
        handin_ok(f, num, num, to_am, 2, t[i]);
    }
    counts_agree(f);
    assert_int_equal(queue_ack(f->q, "ppa", t[0], Q_DELIVERED, NULL, f->err,
                               sizeof(f->err)), Q_OK);
    assert_int_equal(queue_ack(f->q, "ppa", t[1], Q_FAILED, NULL, f->err,
                               sizeof(f->err)), Q_OK);
    assert_int_equal(queue_op_hold(f->q, t[2], NULL, &n, f->err,
                                   sizeof(f->err)), Q_OK);
    assert_int_equal(n, 2);
    counts_agree(f);
    memset(&s, 0, sizeof(s));
    assert_int_equal(queue_op_status(f->q, status_cb, &s, f->err,
                                     sizeof(f->err)), Q_OK);
    /* ppa pull: waiting 1, delivered 1, failed 1, held 1;
     * ppb smtp: waiting 3, held 1 */
    assert_int_equal(s.n, 6);
    assert_int_equal(s.state[0], Q_WAITING);
    assert_int_equal(s.count[0], 1);
    assert_int_equal(s.state[1], Q_DELIVERED);
    assert_int_equal(s.count[1], 1);
    assert_int_equal(s.state[2], Q_FAILED);
    assert_int_equal(s.count[2], 1);
    assert_int_equal(s.state[3], Q_HELD);
    assert_int_equal(s.count[3], 1);
    assert_string_equal(s.partner[4], "ppb");
    assert_int_equal(s.state[4], Q_WAITING);
    assert_int_equal(s.count[4], 3);
    assert_true(s.next[4] > 0);
    assert_int_equal(s.state[5], Q_HELD);
    assert_int_equal(s.next[5], 0);

    assert_int_equal(queue_op_release(f->q, t[2], NULL, wall_ms(), &n, f->err,
                                      sizeof(f->err)), Q_OK);
    assert_int_equal(queue_op_hold(f->q, t[3], NULL, &n, f->err,
                                   sizeof(f->err)), Q_OK);
    assert_int_equal(queue_op_purge(f->q, t[3], &n, f->err, sizeof(f->err)),
                     Q_OK);
    assert_int_equal(n, 2);
    counts_agree(f);
    memset(&s, 0, sizeof(s));
    assert_int_equal(queue_op_status(f->q, status_cb, &s, f->err,
                                     sizeof(f->err)), Q_OK);
    assert_int_equal(s.n, 4);               /* emptied groups are not shown */
    assert_int_equal(s.count[0], 1);        /* ppa waiting: t[2] */
    assert_int_equal(s.count[3], 3);        /* ppb waiting: t[0..2] */

    /* a count changed behind the triggers' back is reported */
    assert_int_equal(sqlite3_open(f->path, &raw), SQLITE_OK);
    assert_int_equal(sqlite3_exec(raw, "UPDATE delivery_count SET n = n + 1"
                                  " WHERE partner = 'ppb'", NULL, NULL, NULL),
                     SQLITE_OK);
    sqlite3_close(raw);
    assert_int_equal(queue_op_check(f->q, f->err, sizeof(f->err)), Q_ERR);
    assert_non_null(strstr(f->err, "counts disagree"));
}

/* A version 1 store (no counts) is read as before when opened read-only,
 * and upgraded, counts filled in, when opened for writing. */
static void
test_upgrade_v1(void **state)
{
    struct fixture *f = *state;
    static const struct q_addressee to_am[] = {
        { "ppa", Q_CH_PULL }, { "ppb", Q_CH_SMTP }
    };
    char t[Q_TRACKING_MAX], num[16];
    struct status_rows s;
    struct queue *q2 = NULL;
    sqlite3 *raw = NULL;
    int i;

    for (i = 0; i < 5; i++) {
        snprintf(num, sizeof(num), "UP-%d", i);
        handin_ok(f, num, num, to_am, 2, t);
    }
    assert_int_equal(queue_ack(f->q, "ppa", t, Q_DELIVERED, NULL, f->err,
                               sizeof(f->err)), Q_OK);
    queue_close(f->q);
    f->q = NULL;
    assert_int_equal(sqlite3_open(f->path, &raw), SQLITE_OK);
    assert_int_equal(sqlite3_exec(raw, "DROP TRIGGER delivery_count_ins;"
                                  "DROP TRIGGER delivery_count_upd;"
                                  "DROP TRIGGER delivery_count_del;"
                                  "DROP TABLE delivery_count;"
                                  "UPDATE schema_version SET version = 1;",
                                  NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(raw);

    assert_int_equal(queue_open(&q2, f->path, 1, f->err,
                                sizeof(f->err)), Q_OK);
    memset(&s, 0, sizeof(s));
    assert_int_equal(queue_op_status(q2, status_cb, &s, f->err,
                                     sizeof(f->err)), Q_OK);
    assert_int_equal(s.n, 3);
    assert_int_equal(s.count[0], 4);        /* ppa waiting */
    assert_int_equal(s.count[1], 1);        /* ppa delivered */
    assert_int_equal(s.count[2], 5);        /* ppb waiting */
    queue_close(q2);
    assert_int_equal(raw_count(f->path, "SELECT version FROM schema_version"),
                     1);

    assert_int_equal(queue_open(&f->q, f->path, 0, f->err, sizeof(f->err)),
                     Q_OK);
    queue_set_sync(f->q, 0);
    assert_int_equal(raw_count(f->path, "SELECT version FROM schema_version"),
                     2);
    assert_int_equal(raw_count(f->path, "SELECT sum(n) FROM delivery_count"),
                     10);
    handin_ok(f, "UP-9", "UP-9", to_am, 2, t);
    counts_agree(f);
    memset(&s, 0, sizeof(s));
    assert_int_equal(queue_op_status(f->q, status_cb, &s, f->err,
                                     sizeof(f->err)), Q_OK);
    assert_int_equal(s.n, 3);
    assert_int_equal(s.count[0], 5);
    assert_int_equal(s.count[2], 6);
}

static void
test_op_list(void **state)
{
    struct fixture *f = *state;
    static const struct q_addressee to_am[] = {
        { "ppa", Q_CH_PULL }, { "ppb", Q_CH_SMTP }, { "ppb", Q_CH_PULL }
    };
    char t1[Q_TRACKING_MAX], t2[Q_TRACKING_MAX];
    struct dels d;

    handin_ok(f, "L-1", "<1/>", to_am, 3, t1);
    handin_ok(f, "L-2", "<2/>", to_am, 3, t2);
    assert_int_equal(queue_ack(f->q, "ppb", t1, Q_FAILED, "bad", f->err,
                               sizeof(f->err)), Q_OK);

    list(f, NULL, -1, 0, 0, &d);
    assert_int_equal(d.n, 6);
    assert_string_equal(d.tracking[0], t1);         /* oldest first */
    assert_string_equal(d.tracking[5], t2);
    list(f, "ppb", -1, 0, 0, &d);
    assert_int_equal(d.n, 4);
    list(f, "ppb", -1, Q_CH_SMTP, 0, &d);
    assert_int_equal(d.n, 2);
    assert_int_equal(d.channel[0], Q_CH_SMTP);
    assert_int_equal(d.channel[1], Q_CH_SMTP);
    list(f, NULL, Q_FAILED, 0, 0, &d);
    assert_int_equal(d.n, 1);
    assert_string_equal(d.partner[0], "ppb");
    assert_string_equal(d.tracking[0], t1);
    assert_string_equal(d.last_error[0], "bad");
    list(f, NULL, Q_WAITING, Q_CH_PULL, 0, &d);
    assert_int_equal(d.n, 3);
    list(f, NULL, -1, 0, 2, &d);
    assert_int_equal(d.n, 2);
    list(f, "nobody", -1, 0, 0, &d);
    assert_int_equal(d.n, 0);
    /* a filter of NULL lists everything */
    memset(&d, 0, sizeof(d));
    assert_int_equal(queue_op_list(f->q, NULL, del_cb, &d, f->err,
                                   sizeof(f->err)), Q_OK);
    assert_int_equal(d.n, 6);
}

struct show {
    struct seen env;
    struct dels dels;
    int nev;
    char ev_partner[MAXROWS][Q_PARTNER_MAX];
    char ev_note[MAXROWS][64];
    int ev_state[MAXROWS], ev_channel[MAXROWS];
    int64_t ev_at[MAXROWS];
};

static int
show_env_cb(void *arg, const struct q_envelope *e)
{
    return env_cb(&((struct show *)arg)->env, e);
}

static int
show_del_cb(void *arg, const struct q_delivery *d)
{
    return del_cb(&((struct show *)arg)->dels, d);
}

static int
show_ev_cb(void *arg, const struct q_event *ev)
{
    struct show *s = arg;

    assert_true(s->nev < MAXROWS);
    snprintf(s->ev_partner[s->nev], Q_PARTNER_MAX, "%s", ev->partner);
    snprintf(s->ev_note[s->nev], 64, "%s", ev->note);
    s->ev_state[s->nev] = ev->state;
    s->ev_channel[s->nev] = ev->channel;
    s->ev_at[s->nev] = ev->at_ms;
    s->nev++;
    return 0;
}

static void
test_op_show(void **state)
{
    struct fixture *f = *state;
    char t[Q_TRACKING_MAX];
    struct show *s = calloc(1, sizeof(*s));

    assert_non_null(s);
    handin_ok(f, "SH-1", "<show/>", to_ab, 2, t);
    assert_int_equal(queue_ack(f->q, "ppb", t, Q_DELIVERED_WARNINGS,
                               "minor", f->err, sizeof(f->err)), Q_OK);
    assert_int_equal(queue_op_show(f->q, t, show_env_cb, show_del_cb,
                                   show_ev_cb, s, f->err, sizeof(f->err)),
                     Q_OK);
    assert_int_equal(s->env.n, 1);
    assert_true(s->env.had_content[0]);
    assert_int_equal(s->env.content_len[0], 7);
    assert_memory_equal(s->env.content[0], "<show/>", 7);
    assert_int_equal(s->env.state[0], Q_WAITING);       /* summary */
    assert_int_equal(s->dels.n, 2);
    assert_string_equal(s->dels.partner[0], "ppa");
    assert_int_equal(s->dels.state[0], Q_WAITING);
    assert_string_equal(s->dels.partner[1], "ppb");
    assert_int_equal(s->dels.state[1], Q_DELIVERED_WARNINGS);
    assert_int_equal(s->nev, 3);
    assert_string_equal(s->ev_partner[0], "ppa");
    assert_int_equal(s->ev_state[0], Q_WAITING);
    assert_string_equal(s->ev_note[0], "created");
    assert_string_equal(s->ev_partner[1], "ppb");
    assert_int_equal(s->ev_state[1], Q_WAITING);
    assert_string_equal(s->ev_partner[2], "ppb");
    assert_int_equal(s->ev_channel[2], Q_CH_PULL);
    assert_int_equal(s->ev_state[2], Q_DELIVERED_WARNINGS);
    assert_string_equal(s->ev_note[2], "minor");
    assert_true(s->ev_at[2] >= s->ev_at[0]);

    /* an idempotent second ack writes no event */
    assert_int_equal(queue_ack(f->q, "ppb", t, Q_FAILED, NULL, f->err,
                               sizeof(f->err)), Q_OK);
    memset(s, 0, sizeof(*s));
    assert_int_equal(queue_op_show(f->q, t, NULL, NULL, show_ev_cb, s,
                                   f->err, sizeof(f->err)), Q_OK);
    assert_int_equal(s->nev, 3);

    assert_int_equal(queue_op_show(f->q, "ECG19990101-0123456789abcdef",
                                   show_env_cb, show_del_cb, show_ev_cb, s,
                                   f->err, sizeof(f->err)), Q_NOTFOUND);
    free(s);
}

/* ---- mail push and operator repair ------------------------------------- */

#define NMAIL 200

static const struct q_addressee to_m[] = { { "ppm", Q_CH_SMTP } };

static int64_t
wall_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

struct mails {
    int n;
    int64_t id[MAXROWS], created[MAXROWS], received[MAXROWS];
    char tracking[MAXROWS][Q_TRACKING_MAX];
    char partner[MAXROWS][Q_PARTNER_MAX];
    char number[MAXROWS][Q_NUMBER_MAX];
    char from[MAXROWS][8], to[MAXROWS][8], sender[MAXROWS][Q_PARTNER_MAX];
    int attempts[MAXROWS], type[MAXROWS], status[MAXROWS], version[MAXROWS];
    unsigned char sha256[MAXROWS][32];
    unsigned char content[MAXROWS][64];
    size_t content_len[MAXROWS];
};

static int
mail_cb(void *arg, const struct q_mail *m)
{
    struct mails *s = arg;
    int i = s->n;

    assert_true(i < MAXROWS);
    s->id[i] = m->delivery_id;
    s->created[i] = m->created_ms;
    s->received[i] = m->received_ms;
    snprintf(s->tracking[i], Q_TRACKING_MAX, "%s", m->tracking);
    snprintf(s->partner[i], Q_PARTNER_MAX, "%s", m->partner);
    snprintf(s->number[i], Q_NUMBER_MAX, "%s", m->number);
    snprintf(s->from[i], 8, "%s", m->from);
    snprintf(s->to[i], 8, "%s", m->to);
    snprintf(s->sender[i], Q_PARTNER_MAX, "%s", m->sender);
    s->attempts[i] = m->attempts;
    s->type[i] = m->type;
    s->status[i] = m->status;
    s->version[i] = m->version;
    assert_non_null(m->sha256);
    memcpy(s->sha256[i], m->sha256, 32);
    assert_non_null(m->content);
    assert_true(m->content_len <= sizeof(s->content[i]));
    memcpy(s->content[i], m->content, m->content_len);
    s->content_len[i] = m->content_len;
    s->n++;
    return 0;
}

/* claim - one claim; on Q_OK the claimed delivery is s->...[s->n - 1] */
static int
claim(struct fixture *f, int64_t now, const char *const *skip, size_t nskip,
      struct mails *s)
{
    int before = s->n, rc;

    rc = queue_mail_claim(f->q, now, 60000, skip, nskip, mail_cb, s,
                          f->err, sizeof(f->err));
    if (rc == Q_OK)
        assert_int_equal(s->n, before + 1);
    else
        assert_int_equal(s->n, before);
    return rc;
}

static int64_t
next_due(struct fixture *f)
{
    int64_t next = -1;

    assert_int_equal(queue_mail_next_due(f->q, &next, f->err,
                                         sizeof(f->err)), Q_OK);
    return next;
}

static void
mail_handin(struct fixture *f, const char *number, const char *partner,
            char *tracking)
{
    const struct q_addressee to[] = { { partner, Q_CH_SMTP } };

    handin_ok(f, number, number, to, 1, tracking);
}

/* show - the deliveries and history of tracking (caller frees) */
static struct show *
show(struct fixture *f, const char *tracking)
{
    struct show *s = calloc(1, sizeof(*s));

    assert_non_null(s);
    assert_int_equal(queue_op_show(f->q, tracking, NULL, show_del_cb,
                                   show_ev_cb, s, f->err, sizeof(f->err)),
                     Q_OK);
    return s;
}

static void
test_mail_claim_order(void **state)
{
    struct fixture *f = *state;
    char t1[Q_TRACKING_MAX], t2[Q_TRACKING_MAX], t3[Q_TRACKING_MAX],
         tp[Q_TRACKING_MAX];
    unsigned char md[32];
    unsigned int mdlen = 0;
    struct mails *s = calloc(1, sizeof(*s));
    struct dels d;
    int64_t base, far;

    assert_non_null(s);
    /* an empty store: nothing due */
    assert_int_equal(claim(f, wall_ms() + 1000, NULL, 0, s), Q_NOTFOUND);
    assert_int_equal(next_due(f), 0);

    handin_ok(f, "P-1", "<pull/>", to_a, 1, tp);     /* never claimed */
    mail_handin(f, "M-1", "ppm", t1);
    mail_handin(f, "M-2", "ppm", t2);
    mail_handin(f, "M-3", "ppn", t3);
    list(f, NULL, -1, Q_CH_SMTP, 0, &d);
    assert_int_equal(d.n, 3);
    base = d.next_attempt_ms[0];
    assert_true(base > 0);
    assert_true(d.next_attempt_ms[1] >= base);
    assert_true(d.next_attempt_ms[2] >= base);
    assert_int_equal(next_due(f), base);

    /* not yet due */
    assert_int_equal(claim(f, base - 1, NULL, 0, s), Q_NOTFOUND);

    /* the oldest due first, with everything about it */
    assert_int_equal(claim(f, base + 10000, NULL, 0, s), Q_OK);
    assert_string_equal(s->tracking[0], t1);
    assert_string_equal(s->partner[0], "ppm");
    assert_string_equal(s->number[0], "M-1");
    assert_string_equal(s->from[0], "NL");
    assert_string_equal(s->to[0], "DE");
    assert_string_equal(s->sender[0], "nl-gw");
    assert_int_equal(s->type[0], 851);
    assert_int_equal(s->status[0], 70);
    assert_int_equal(s->version[0], 1);
    assert_int_equal(s->attempts[0], 1);
    assert_int_equal(s->created[0], base);
    assert_true(s->received[0] > 0);
    assert_int_equal(s->content_len[0], 3);
    assert_memory_equal(s->content[0], "M-1", 3);
    assert_int_equal(EVP_Digest("M-1", 3, md, &mdlen, EVP_sha256(), NULL),
                     1);
    assert_memory_equal(s->sha256[0], md, 32);

    /* deferred to before M-2 was due: it comes before M-2 */
    assert_int_equal(queue_mail_done(f->q, s->id[0], Q_DEFERRED, base - 5,
                                     "421 busy", f->err, sizeof(f->err)),
                     Q_OK);
    assert_int_equal(next_due(f), base - 5);
    assert_int_equal(claim(f, base + 10000, NULL, 0, s), Q_OK);
    assert_string_equal(s->tracking[1], t1);
    assert_int_equal(s->id[1], s->id[0]);
    assert_int_equal(s->attempts[1], 2);

    /* deferred into the future: the waiting ones come first */
    far = base + 3600000;
    assert_int_equal(queue_mail_done(f->q, s->id[0], Q_DEFERRED, far,
                                     "421 busy", f->err, sizeof(f->err)),
                     Q_OK);
    assert_int_equal(claim(f, base + 10000, NULL, 0, s), Q_OK);
    assert_string_equal(s->tracking[2], t2);
    assert_int_equal(claim(f, base + 10000, NULL, 0, s), Q_OK);
    assert_string_equal(s->tracking[3], t3);
    assert_string_equal(s->partner[3], "ppn");
    assert_int_equal(claim(f, base + 10000, NULL, 0, s), Q_NOTFOUND);
    /* the ones sending do not count as due */
    assert_int_equal(next_due(f), far);
    assert_int_equal(claim(f, far - 1, NULL, 0, s), Q_NOTFOUND);
    assert_int_equal(claim(f, far, NULL, 0, s), Q_OK);
    assert_string_equal(s->tracking[4], t1);
    assert_int_equal(s->attempts[4], 3);
    assert_int_equal(next_due(f), 0);

    /* the pull delivery was never touched */
    list(f, "ppa", -1, 0, 0, &d);
    assert_int_equal(d.n, 1);
    assert_int_equal(d.state[0], Q_WAITING);
    assert_int_equal(d.attempts[0], 0);
    free(s);
}

struct claim_probe {
    struct mails m;
    struct queue *other;
    const char *tracking;
    int state_seen, hold_rc, held;
    time_t took;
};

/* probe_cb - while the callback runs the claim is committed: another
 * handle sees it sending and can write at once */
static int
probe_cb(void *arg, const struct q_mail *m)
{
    struct claim_probe *p = arg;
    struct dels d;
    struct q_filter flt = { "ppm", Q_SENDING, Q_CH_SMTP, 0 };
    char err[256];
    time_t t0 = time(NULL);

    memset(&d, 0, sizeof(d));
    assert_int_equal(queue_op_list(p->other, &flt, del_cb, &d, err,
                                   sizeof(err)), Q_OK);
    assert_int_equal(d.n, 1);
    p->state_seen = d.state[0];
    p->hold_rc = queue_op_hold(p->other, p->tracking, NULL, &p->held, err,
                               sizeof(err));
    p->took = time(NULL) - t0;
    return mail_cb(&p->m, m);
}

static void
test_mail_claim_state(void **state)
{
    struct fixture *f = *state;
    char t[Q_TRACKING_MAX];
    struct claim_probe *p = calloc(1, sizeof(*p));
    struct show *sh;
    struct dels d;
    int64_t now;

    assert_non_null(p);
    mail_handin(f, "CS-1", "ppm", t);
    now = wall_ms() + 5;
    assert_int_equal(queue_mail_claim(f->q, now, 30000, NULL, 0, mail_cb,
                                      &p->m, f->err, sizeof(f->err)), Q_OK);
    assert_int_equal(p->m.n, 1);
    list(f, "ppm", -1, 0, 0, &d);
    assert_int_equal(d.n, 1);
    assert_int_equal(d.state[0], Q_SENDING);
    assert_int_equal(d.attempts[0], 1);
    assert_int_equal(d.next_attempt_ms[0], now + 30000);      /* the lease */
    sh = show(f, t);
    assert_int_equal(sh->nev, 2);
    assert_int_equal(sh->ev_state[0], Q_WAITING);
    assert_int_equal(sh->ev_state[1], Q_SENDING);
    assert_int_equal(sh->ev_channel[1], Q_CH_SMTP);
    assert_string_equal(sh->ev_note[1], "attempt 1");
    free(sh);
    /* a sending delivery is not claimed again, lease or not */
    assert_int_equal(claim(f, now + 3600000, NULL, 0, &p->m), Q_NOTFOUND);

    /* the callback runs after the commit */
    mail_handin(f, "CS-2", "ppm", t);
    assert_int_equal(queue_mail_done(f->q, p->m.id[0], Q_DELIVERED, 0, NULL,
                                     f->err, sizeof(f->err)), Q_OK);
    assert_int_equal(queue_open(&p->other, f->path, 0, f->err,
                                sizeof(f->err)), Q_OK);
    queue_set_sync(p->other, 0);
    p->tracking = t;
    memset(&p->m, 0, sizeof(p->m));
    assert_int_equal(queue_mail_claim(f->q, wall_ms() + 5, 30000, NULL, 0,
                                      probe_cb, p, f->err, sizeof(f->err)),
                     Q_OK);
    queue_close(p->other);
    assert_int_equal(p->m.n, 1);
    assert_string_equal(p->m.tracking[0], t);
    assert_int_equal(p->state_seen, Q_SENDING);
    assert_int_equal(p->hold_rc, Q_OK);
    assert_int_equal(p->held, 1);
    assert_true(p->took < 3);
    /* the operator moved it: the outcome no longer applies */
    assert_int_equal(queue_mail_done(f->q, p->m.id[0], Q_DELIVERED, 0, NULL,
                                     f->err, sizeof(f->err)), Q_NOTFOUND);
    list(f, "ppm", Q_HELD, 0, 0, &d);
    assert_int_equal(d.n, 1);
    assert_string_equal(d.tracking[0], t);
    free(p);
}

static void
test_mail_skip(void **state)
{
    struct fixture *f = *state;
    static const char *const skip_m[] = { "ppx", "ppm" };
    static const char *const skip_all[] = { "ppm", "ppn" };
    char t1[Q_TRACKING_MAX], t2[Q_TRACKING_MAX], t3[Q_TRACKING_MAX];
    struct mails *s = calloc(1, sizeof(*s));
    int64_t now;

    assert_non_null(s);
    mail_handin(f, "SK-1", "ppm", t1);
    mail_handin(f, "SK-2", "ppm", t2);
    mail_handin(f, "SK-3", "ppn", t3);
    now = wall_ms() + 1000;
    assert_int_equal(claim(f, now, skip_all, 2, s), Q_NOTFOUND);
    assert_int_equal(claim(f, now, skip_m, 2, s), Q_OK);
    assert_string_equal(s->tracking[0], t3);
    assert_int_equal(claim(f, now, skip_m, 2, s), Q_NOTFOUND);
    assert_int_equal(claim(f, now, skip_m, 1, s), Q_OK);    /* only ppx */
    assert_string_equal(s->tracking[1], t1);
    assert_int_equal(claim(f, now, NULL, 0, s), Q_OK);
    assert_string_equal(s->tracking[2], t2);
    /* a skip count without a list is the caller's error */
    assert_int_equal(queue_mail_claim(f->q, now, 1000, NULL, 1, mail_cb, s,
                                      f->err, sizeof(f->err)), Q_ERR);
    assert_false(queue_err_transient(f->q));
    free(s);
}

struct claimer {
    struct queue *q;
    pthread_barrier_t *start;
    size_t batch;                    /* 0: one at a time (queue_mail_claim) */
    int64_t now;
    int n, errors;
    int64_t ids[NMAIL];
    char err[256];
};

/* id_cb - note the id, then take a while as sending would, so that the
 * other thread gets its turn at the store */
static int
id_cb(void *arg, const struct q_mail *m)
{
    struct claimer *c = arg;
    struct timespec ts = { 0, 1000000 };

    if (c->n < NMAIL)
        c->ids[c->n] = m->delivery_id;
    c->n++;
    nanosleep(&ts, NULL);
    return 0;
}

static void *
claimer_run(void *arg)
{
    struct claimer *c = arg;
    int rc;

    pthread_barrier_wait(c->start);
    for (;;) {
        if (c->batch > 0)
            rc = queue_mail_claim_batch(c->q, c->now, 60000, c->batch, NULL,
                                        NULL, id_cb, c, NULL, c->err,
                                        sizeof(c->err));
        else
            rc = queue_mail_claim(c->q, c->now, 60000, NULL, 0, id_cb, c,
                                  c->err, sizeof(c->err));
        if (rc == Q_NOTFOUND)
            break;
        if (rc != Q_OK) {
            c->errors++;
            break;
        }
    }
    return NULL;
}

static int
cmp_id(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

    return (x > y) - (x < y);
}

/* two threads, each with its own handle, claim until nothing is due
 * (batch: deliveries per claim, 0 one at a time): every delivery is claimed
 * exactly once */
static void
concurrent_claims(struct fixture *f, size_t batch)
{
    struct claimer *c = calloc(2, sizeof(*c));
    int64_t *all = calloc(2 * NMAIL, sizeof(*all));
    pthread_barrier_t start;
    pthread_t th[2];
    struct status_rows st;
    char t[Q_TRACKING_MAX], num[16];
    int i, n;

    assert_non_null(c);
    assert_non_null(all);
    for (i = 0; i < NMAIL; i++) {
        snprintf(num, sizeof(num), "CC-%d", i);
        mail_handin(f, num, i % 2 ? "ppm" : "ppn", t);
    }
    assert_int_equal(pthread_barrier_init(&start, NULL, 2), 0);
    for (i = 0; i < 2; i++) {
        assert_int_equal(queue_open(&c[i].q, f->path, 0, f->err,
                                    sizeof(f->err)), Q_OK);
        queue_set_sync(c[i].q, 0);
        c[i].start = &start;
        c[i].batch = batch;
        c[i].now = wall_ms() + 1000;
    }
    for (i = 0; i < 2; i++)
        assert_int_equal(pthread_create(&th[i], NULL, claimer_run, &c[i]),
                         0);
    for (i = 0; i < 2; i++)
        assert_int_equal(pthread_join(th[i], NULL), 0);
    pthread_barrier_destroy(&start);
    for (i = 0; i < 2; i++) {
        if (c[i].errors != 0)
            fprintf(stderr, "claimer %d: %s\n", i, c[i].err);
        assert_int_equal(c[i].errors, 0);
        queue_close(c[i].q);
    }
    if (getenv("TEST_QUEUE_PLANS") != NULL)
        fprintf(stderr, "claims: %d + %d\n", c[0].n, c[1].n);
    assert_int_equal(c[0].n + c[1].n, NMAIL);
    assert_true(c[0].n > 0 && c[1].n > 0);       /* they did interleave */
    n = 0;
    for (i = 0; i < c[0].n; i++)
        all[n++] = c[0].ids[i];
    for (i = 0; i < c[1].n; i++)
        all[n++] = c[1].ids[i];
    qsort(all, (size_t)n, sizeof(*all), cmp_id);
    for (i = 1; i < n; i++)
        assert_true(all[i - 1] < all[i]);           /* each exactly once */
    /* and every one of them is sending, claimed once */
    memset(&st, 0, sizeof(st));
    assert_int_equal(queue_op_status(f->q, status_cb, &st, f->err,
                                     sizeof(f->err)), Q_OK);
    assert_int_equal(st.n, 2);
    assert_int_equal(st.state[0], Q_SENDING);
    assert_int_equal(st.state[1], Q_SENDING);
    assert_int_equal(st.count[0] + st.count[1], NMAIL);
    {
        sqlite3 *raw = NULL;
        sqlite3_stmt *q = NULL;

        assert_int_equal(sqlite3_open(f->path, &raw), SQLITE_OK);
        assert_int_equal(sqlite3_prepare_v2(raw, "SELECT count(*),"
                         " min(attempts), max(attempts) FROM delivery",
                         -1, &q, NULL), SQLITE_OK);
        assert_int_equal(sqlite3_step(q), SQLITE_ROW);
        assert_int_equal(sqlite3_column_int(q, 0), NMAIL);
        assert_int_equal(sqlite3_column_int(q, 1), 1);
        assert_int_equal(sqlite3_column_int(q, 2), 1);
        sqlite3_finalize(q);
        sqlite3_close(raw);
    }
    free(all);
    free(c);
}

static void
test_mail_concurrent_claims(void **state)
{
    concurrent_claims(*state, 0);
}

static void
test_mail_concurrent_batch_claims(void **state)
{
    concurrent_claims(*state, 7);
}

static void
test_mail_done(void **state)
{
    struct fixture *f = *state;
    char t1[Q_TRACKING_MAX], t2[Q_TRACKING_MAX], t3[Q_TRACKING_MAX],
         t4[Q_TRACKING_MAX], big[2000];
    struct mails *s = calloc(1, sizeof(*s));
    struct status_rows st;
    struct show *sh;
    struct dels d;
    int64_t now, later;
    int i;

    assert_non_null(s);
    mail_handin(f, "D-1", "ppm", t1);
    mail_handin(f, "D-2", "ppm", t2);
    mail_handin(f, "D-3", "ppm", t3);
    mail_handin(f, "D-4", "ppm", t4);
    now = wall_ms() + 1000;
    later = now + 600000;
    for (i = 0; i < 4; i++)
        assert_int_equal(claim(f, now, NULL, 0, s), Q_OK);
    assert_string_equal(s->tracking[3], t4);

    /* not outcomes, or deferred without a time: refused, nothing moves */
    assert_int_equal(queue_mail_done(f->q, s->id[0], Q_WAITING, 0, NULL,
                                     f->err, sizeof(f->err)), Q_ERR);
    assert_int_equal(queue_mail_done(f->q, s->id[0], Q_FAILED, 0, NULL,
                                     f->err, sizeof(f->err)), Q_ERR);
    assert_int_equal(queue_mail_done(f->q, s->id[0], Q_DEFERRED, 0, "x",
                                     f->err, sizeof(f->err)), Q_ERR);
    assert_false(queue_err_transient(f->q));

    assert_int_equal(queue_mail_done(f->q, s->id[0], Q_DELIVERED, 12345,
                                     "250 2.0.0 Ok: queued as 4Abc",
                                     f->err, sizeof(f->err)), Q_OK);
    assert_int_equal(queue_mail_done(f->q, s->id[1], Q_DEFERRED, later,
                                     "451 4.7.1 try again later", f->err,
                                     sizeof(f->err)), Q_OK);
    memset(big, 'e', sizeof(big));
    big[sizeof(big) - 1] = '\0';
    assert_int_equal(queue_mail_done(f->q, s->id[2], Q_DEAD, later, big,
                                     f->err, sizeof(f->err)), Q_OK);
    assert_int_equal(queue_mail_done(f->q, s->id[3], Q_DELIVERED, 0, NULL,
                                     f->err, sizeof(f->err)), Q_OK);

    list(f, "ppm", -1, 0, 0, &d);
    assert_int_equal(d.n, 4);
    assert_int_equal(d.state[0], Q_DELIVERED);
    assert_int_equal(d.next_attempt_ms[0], 0);
    assert_string_equal(d.last_error[0], "250 2.0.0 Ok: queued as 4Abc");
    assert_int_equal(d.state[1], Q_DEFERRED);
    assert_int_equal(d.next_attempt_ms[1], later);
    assert_int_equal(d.attempts[1], 1);
    assert_string_equal(d.last_error[1], "451 4.7.1 try again later");
    assert_int_equal(d.state[2], Q_DEAD);
    assert_int_equal(d.next_attempt_ms[2], 0);
    assert_int_equal(strlen(d.last_error[2]), Q_ERROR_MAX - 1);
    {
        sqlite3 *raw = NULL;
        sqlite3_stmt *q = NULL;

        /* cut in the store, not just in the listing */
        assert_int_equal(sqlite3_open(f->path, &raw), SQLITE_OK);
        assert_int_equal(sqlite3_prepare_v2(raw, "SELECT length(last_error)"
                         " FROM delivery WHERE state = 7", -1, &q, NULL),
                         SQLITE_OK);
        assert_int_equal(sqlite3_step(q), SQLITE_ROW);
        assert_int_equal(sqlite3_column_int(q, 0), Q_ERROR_MAX - 1);
        sqlite3_finalize(q);
        sqlite3_close(raw);
    }
    assert_int_equal(d.state[3], Q_DELIVERED);
    assert_string_equal(d.last_error[3], "");
    assert_int_equal(track_state(f, "nl-gw", t1), Q_DELIVERED);

    /* history: created, sending, outcome (note: the reply or delivered) */
    sh = show(f, t2);
    assert_int_equal(sh->nev, 3);
    assert_int_equal(sh->ev_state[1], Q_SENDING);
    assert_int_equal(sh->ev_state[2], Q_DEFERRED);
    assert_string_equal(sh->ev_note[2], "451 4.7.1 try again later");
    free(sh);
    sh = show(f, t1);
    assert_int_equal(sh->nev, 3);
    assert_int_equal(sh->ev_state[2], Q_DELIVERED);
    assert_string_equal(sh->ev_note[2], "250 2.0.0 Ok: queued as 4Abc");
    free(sh);
    sh = show(f, t4);
    assert_int_equal(sh->nev, 3);
    assert_string_equal(sh->ev_note[2], "delivered");
    free(sh);
    sh = show(f, t3);
    assert_int_equal(sh->nev, 3);
    assert_int_equal(sh->ev_state[2], Q_DEAD);
    free(sh);

    /* only a sending delivery takes an outcome */
    assert_int_equal(queue_mail_done(f->q, s->id[0], Q_DEAD, 0, "late",
                                     f->err, sizeof(f->err)), Q_NOTFOUND);
    assert_int_equal(queue_mail_done(f->q, s->id[1], Q_DELIVERED, 0, "late",
                                     f->err, sizeof(f->err)), Q_NOTFOUND);
    assert_int_equal(queue_mail_done(f->q, 987654321, Q_DELIVERED, 0, NULL,
                                     f->err, sizeof(f->err)), Q_NOTFOUND);
    list(f, "ppm", -1, 0, 0, &d);
    assert_int_equal(d.state[0], Q_DELIVERED);
    assert_string_equal(d.last_error[0], "250 2.0.0 Ok: queued as 4Abc");
    assert_int_equal(d.state[1], Q_DEFERRED);
    sh = show(f, t2);
    assert_int_equal(sh->nev, 3);
    free(sh);

    /* status: the deferred row's next attempt; none for final rows */
    memset(&st, 0, sizeof(st));
    assert_int_equal(queue_op_status(f->q, status_cb, &st, f->err,
                                     sizeof(f->err)), Q_OK);
    assert_int_equal(st.n, 3);
    assert_int_equal(st.state[0], Q_DEFERRED);
    assert_int_equal(st.next[0], later);
    assert_int_equal(st.state[1], Q_DELIVERED);
    assert_int_equal(st.count[1], 2);
    assert_int_equal(st.next[1], 0);
    assert_int_equal(st.state[2], Q_DEAD);
    assert_int_equal(st.next[2], 0);
    free(s);
}

static void
test_mail_recover(void **state)
{
    struct fixture *f = *state;
    char t0[Q_TRACKING_MAX], t1[Q_TRACKING_MAX], t2[Q_TRACKING_MAX],
         t3[Q_TRACKING_MAX];
    struct mails *s = calloc(1, sizeof(*s));
    struct show *sh;
    struct dels d;
    int64_t now, rec;
    int n = -1;

    assert_non_null(s);
    handin_ok(f, "R-0", "<p/>", to_a, 1, t0);
    mail_handin(f, "R-1", "ppm", t1);
    mail_handin(f, "R-2", "ppn", t2);
    mail_handin(f, "R-3", "ppm", t3);
    now = wall_ms() + 1000;
    assert_int_equal(claim(f, now, NULL, 0, s), Q_OK);
    assert_int_equal(claim(f, now, NULL, 0, s), Q_OK);
    rec = now + 50;
    assert_int_equal(queue_mail_recover(f->q, rec, &n, f->err,
                                        sizeof(f->err)), Q_OK);
    assert_int_equal(n, 2);
    list(f, NULL, -1, Q_CH_SMTP, 0, &d);
    assert_int_equal(d.n, 3);
    assert_int_equal(d.state[0], Q_DEFERRED);
    assert_int_equal(d.next_attempt_ms[0], rec);
    assert_int_equal(d.attempts[0], 1);
    assert_int_equal(d.state[1], Q_DEFERRED);
    assert_int_equal(d.next_attempt_ms[1], rec);
    assert_int_equal(d.state[2], Q_WAITING);
    assert_int_equal(d.attempts[2], 0);
    list(f, "ppa", -1, 0, 0, &d);
    assert_int_equal(d.state[0], Q_WAITING);
    sh = show(f, t2);
    assert_int_equal(sh->nev, 3);
    assert_int_equal(sh->ev_state[2], Q_DEFERRED);
    assert_string_equal(sh->ev_note[2], "interrupted");
    free(sh);
    /* nothing left sending */
    assert_int_equal(queue_mail_recover(f->q, rec, &n, f->err,
                                        sizeof(f->err)), Q_OK);
    assert_int_equal(n, 0);
    /* and due again (the waiting R-3 was due earlier, so it comes first) */
    assert_int_equal(claim(f, rec, NULL, 0, s), Q_OK);
    assert_string_equal(s->tracking[2], t3);
    assert_int_equal(claim(f, rec, NULL, 0, s), Q_OK);
    assert_string_equal(s->tracking[3], t1);
    assert_int_equal(s->attempts[3], 2);
    free(s);
}

static void
test_mail_next_due(void **state)
{
    struct fixture *f = *state;
    char t1[Q_TRACKING_MAX], t2[Q_TRACKING_MAX];
    struct mails *s = calloc(1, sizeof(*s));
    struct dels d;
    int64_t now;

    assert_non_null(s);
    assert_int_equal(next_due(f), 0);
    handin_ok(f, "N-0", "<p/>", to_a, 1, t1);      /* pull: never due */
    assert_int_equal(next_due(f), 0);
    mail_handin(f, "N-1", "ppm", t1);
    mail_handin(f, "N-2", "ppm", t2);
    list(f, "ppm", -1, 0, 0, &d);
    assert_int_equal(next_due(f), d.next_attempt_ms[0]);
    now = wall_ms() + 1000;
    assert_int_equal(claim(f, now, NULL, 0, s), Q_OK);
    assert_int_equal(next_due(f), d.next_attempt_ms[1]);
    assert_int_equal(queue_mail_done(f->q, s->id[0], Q_DEFERRED, now + 7,
                                     "4xx", f->err, sizeof(f->err)), Q_OK);
    assert_int_equal(next_due(f), d.next_attempt_ms[1]);
    assert_int_equal(claim(f, now, NULL, 0, s), Q_OK);
    assert_int_equal(next_due(f), now + 7);
    assert_int_equal(queue_mail_done(f->q, s->id[1], Q_DEFERRED, now + 3,
                                     "4xx", f->err, sizeof(f->err)), Q_OK);
    assert_int_equal(next_due(f), now + 3);
    assert_int_equal(queue_op_hold(f->q, NULL, "ppm", NULL, f->err,
                                   sizeof(f->err)), Q_OK);
    assert_int_equal(next_due(f), 0);
    free(s);
}

/* ---- batched claims and outcomes ------------------------------------------ */

/* by_partner - a grouping for the batch claims: ppm 0, ppn 1, and the
 * partners listed in skip (a NULL-terminated list) not now */
struct grouping {
    const char *const *skip;
    int calls;
};

static int
by_partner(void *arg, const char *partner)
{
    struct grouping *g = arg;
    size_t i;

    g->calls++;
    for (i = 0; g->skip != NULL && g->skip[i] != NULL; i++)
        if (strcmp(g->skip[i], partner) == 0)
            return -1;
    return strcmp(partner, "ppn") == 0 ? 1 : 0;
}

/* claim_batch - one batch claim of at most max; *n of them, appended to s */
static int
claim_batch(struct fixture *f, int64_t now, size_t max, struct grouping *g,
            struct mails *s, size_t *n)
{
    int before = s->n, rc;

    *n = 99;
    rc = queue_mail_claim_batch(f->q, now, 60000, max, g ? by_partner : NULL,
                                g, mail_cb, s, n, f->err, sizeof(f->err));
    assert_int_equal(s->n, before + (int)*n);
    if (rc == Q_OK)
        assert_true(*n >= 1 && *n <= max);
    else
        assert_int_equal(*n, 0);
    return rc;
}

static void
test_mail_claim_batch(void **state)
{
    struct fixture *f = *state;
    static const char *const skip_m[] = { "ppm", NULL };
    char a[5][Q_TRACKING_MAX], b[2][Q_TRACKING_MAX], h[Q_TRACKING_MAX],
         tp[Q_TRACKING_MAX];
    struct mails *s = calloc(1, sizeof(*s));
    struct grouping g = { NULL, 0 };
    struct show *sh;
    struct dels d;
    int64_t now;
    size_t n;
    int i, held = -1;

    assert_non_null(s);
    /* in due order: A1 A2 B1 A3 H A4 B2 (A: ppm, B: ppn, H: ppm, held),
     * and a pull delivery, which no claim ever takes */
    handin_ok(f, "BP-1", "<pull/>", to_a, 1, tp);
    mail_handin(f, "BA-1", "ppm", a[0]);
    mail_handin(f, "BA-2", "ppm", a[1]);
    mail_handin(f, "BB-1", "ppn", b[0]);
    mail_handin(f, "BA-3", "ppm", a[2]);
    mail_handin(f, "BH-1", "ppm", h);
    mail_handin(f, "BA-4", "ppm", a[3]);
    mail_handin(f, "BB-2", "ppn", b[1]);
    assert_int_equal(queue_op_hold(f->q, h, NULL, &held, f->err,
                                   sizeof(f->err)), Q_OK);
    assert_int_equal(held, 1);
    now = wall_ms() + 1000;

    /* not a batch size, or no valid time: refused, nothing claimed */
    assert_int_equal(claim_batch(f, now, 0, &g, s, &n), Q_ERR);
    assert_false(queue_err_transient(f->q));
    assert_int_equal(claim_batch(f, now, Q_MAIL_BATCH_MAX + 1, &g, s, &n),
                     Q_ERR);
    assert_int_equal(claim_batch(f, 0, 4, &g, s, &n), Q_ERR);
    list(f, NULL, Q_SENDING, 0, 0, &d);
    assert_int_equal(d.n, 0);

    /* the oldest due (A1) and the next of its group, past B1 and H */
    assert_int_equal(claim_batch(f, now, 3, &g, s, &n), Q_OK);
    assert_int_equal(n, 3);
    assert_string_equal(s->tracking[0], a[0]);
    assert_string_equal(s->tracking[1], a[1]);
    assert_string_equal(s->tracking[2], a[2]);
    for (i = 0; i < 3; i++) {
        assert_string_equal(s->partner[i], "ppm");
        assert_int_equal(s->attempts[i], 1);
        assert_int_equal(s->content_len[i], 4);
    }
    assert_memory_equal(s->content[1], "BA-2", 4);
    /* the group is asked per run of one partner, not per row */
    assert_true(g.calls <= 4);
    /* durably sending, under the lease, with the claim in the history */
    list(f, "ppm", Q_SENDING, 0, 0, &d);
    assert_int_equal(d.n, 3);
    for (i = 0; i < 3; i++) {
        assert_int_equal(d.attempts[i], 1);
        assert_int_equal(d.next_attempt_ms[i], now + 60000);
    }
    sh = show(f, a[2]);
    assert_int_equal(sh->nev, 2);
    assert_int_equal(sh->ev_state[1], Q_SENDING);
    assert_string_equal(sh->ev_note[1], "attempt 1");
    free(sh);

    /* a group not to be claimed now is passed over: ppn's two */
    g.skip = skip_m;
    assert_int_equal(claim_batch(f, now, 32, &g, s, &n), Q_OK);
    assert_int_equal(n, 2);
    assert_string_equal(s->tracking[3], b[0]);
    assert_string_equal(s->tracking[4], b[1]);
    assert_int_equal(claim_batch(f, now, 32, &g, s, &n), Q_NOTFOUND);
    /* then the last of ppm; the held one never */
    g.skip = NULL;
    assert_int_equal(claim_batch(f, now, 32, &g, s, &n), Q_OK);
    assert_int_equal(n, 1);
    assert_string_equal(s->tracking[5], a[3]);
    assert_int_equal(claim_batch(f, now, 32, &g, s, &n), Q_NOTFOUND);
    list(f, "ppm", Q_HELD, 0, 0, &d);
    assert_int_equal(d.n, 1);
    assert_string_equal(d.tracking[0], h);
    assert_int_equal(d.attempts[0], 0);
    list(f, "ppa", -1, 0, 0, &d);
    assert_int_equal(d.state[0], Q_WAITING);
    free(s);
}

static void
test_mail_claim_batch_nogroup(void **state)
{
    struct fixture *f = *state;
    char t[6][Q_TRACKING_MAX];
    struct mails *s = calloc(1, sizeof(*s));
    int64_t now;
    size_t n;
    int i;

    assert_non_null(s);
    for (i = 0; i < 6; i++) {
        char num[16];

        snprintf(num, sizeof(num), "NG-%d", i);
        mail_handin(f, num, i % 2 ? "ppn" : "ppm", t[i]);
    }
    now = wall_ms() + 1000;
    /* no grouping: one group, due order, partners mixed */
    assert_int_equal(claim_batch(f, now, 4, NULL, s, &n), Q_OK);
    assert_int_equal(n, 4);
    for (i = 0; i < 4; i++)
        assert_string_equal(s->tracking[i], t[i]);
    /* not yet due at an earlier time: nothing */
    assert_int_equal(claim_batch(f, 1, 4, NULL, s, &n), Q_NOTFOUND);
    /* fewer due than max: what there is */
    assert_int_equal(claim_batch(f, now, Q_MAIL_BATCH_MAX, NULL, s, &n),
                     Q_OK);
    assert_int_equal(n, 2);
    assert_string_equal(s->tracking[4], t[4]);
    assert_string_equal(s->tracking[5], t[5]);
    assert_int_equal(next_due(f), 0);
    free(s);
}

static void
test_mail_done_batch(void **state)
{
    struct fixture *f = *state;
    char t[5][Q_TRACKING_MAX], num[16];
    struct mails *s = calloc(1, sizeof(*s));
    struct q_mail_outcome o[5];
    struct show *sh;
    struct dels d;
    int64_t now, later;
    size_t n;
    int i, held = 0;

    assert_non_null(s);
    for (i = 0; i < 5; i++) {
        snprintf(num, sizeof(num), "DB-%d", i);
        mail_handin(f, num, "ppm", t[i]);
    }
    now = wall_ms() + 1000;
    later = now + 600000;
    assert_int_equal(claim_batch(f, now, 5, NULL, s, &n), Q_OK);
    assert_int_equal(n, 5);
    memset(o, 0, sizeof(o));
    for (i = 0; i < 5; i++)
        o[i].delivery_id = s->id[i];
    o[0].state = Q_DELIVERED;
    o[0].error = "DATA: 250 2.0.0 Ok: queued as 1A";
    o[1].state = Q_DEFERRED;
    o[1].next_ms = later;
    o[1].error = "DATA: 451 4.3.0 try again";
    o[2].state = Q_DEAD;
    o[2].error = "DATA: 554 5.6.0 refused";
    o[3].state = Q_DELIVERED;
    o[4].state = Q_DEFERRED;                 /* no time: not an outcome */

    /* one bad outcome: nothing of the batch is recorded */
    o[4].result = 7;
    assert_int_equal(queue_mail_done_batch(f->q, o, 5, f->err,
                                           sizeof(f->err)), Q_ERR);
    assert_false(queue_err_transient(f->q));
    for (i = 0; i < 5; i++)
        assert_int_equal(o[i].result, Q_ERR);
    list(f, "ppm", Q_SENDING, 0, 0, &d);
    assert_int_equal(d.n, 5);
    o[4].state = Q_WAITING;
    assert_int_equal(queue_mail_done_batch(f->q, o, 5, f->err,
                                           sizeof(f->err)), Q_ERR);
    list(f, "ppm", Q_SENDING, 0, 0, &d);
    assert_int_equal(d.n, 5);

    /* the operator holds one while it is sending: its outcome no longer
     * applies, the others' do, in one transaction */
    assert_int_equal(queue_op_hold(f->q, t[4], NULL, &held, f->err,
                                   sizeof(f->err)), Q_OK);
    assert_int_equal(held, 1);
    o[4].state = Q_DELIVERED;
    assert_int_equal(queue_mail_done_batch(f->q, o, 5, f->err,
                                           sizeof(f->err)), Q_OK);
    for (i = 0; i < 4; i++)
        assert_int_equal(o[i].result, Q_OK);
    assert_int_equal(o[4].result, Q_NOTFOUND);
    list(f, "ppm", -1, 0, 0, &d);
    assert_int_equal(d.n, 5);
    assert_int_equal(d.state[0], Q_DELIVERED);
    assert_string_equal(d.last_error[0], "DATA: 250 2.0.0 Ok: queued as 1A");
    assert_int_equal(d.next_attempt_ms[0], 0);
    assert_int_equal(d.state[1], Q_DEFERRED);
    assert_int_equal(d.next_attempt_ms[1], later);
    assert_string_equal(d.last_error[1], "DATA: 451 4.3.0 try again");
    assert_int_equal(d.state[2], Q_DEAD);
    assert_string_equal(d.last_error[2], "DATA: 554 5.6.0 refused");
    assert_int_equal(d.state[3], Q_DELIVERED);
    assert_string_equal(d.last_error[3], "");
    assert_int_equal(d.state[4], Q_HELD);
    sh = show(f, t[3]);
    assert_int_equal(sh->nev, 3);
    assert_int_equal(sh->ev_state[2], Q_DELIVERED);
    assert_string_equal(sh->ev_note[2], "delivered");
    free(sh);
    sh = show(f, t[2]);
    assert_int_equal(sh->nev, 3);
    assert_string_equal(sh->ev_note[2], "DATA: 554 5.6.0 refused");
    free(sh);
    sh = show(f, t[4]);                      /* created, sending, held */
    assert_int_equal(sh->nev, 3);
    assert_int_equal(sh->ev_state[2], Q_HELD);
    free(sh);

    /* recorded once: the same outcomes again apply to nothing */
    assert_int_equal(queue_mail_done_batch(f->q, o, 4, f->err,
                                           sizeof(f->err)), Q_OK);
    for (i = 0; i < 4; i++)
        assert_int_equal(o[i].result, Q_NOTFOUND);
    sh = show(f, t[0]);
    assert_int_equal(sh->nev, 3);
    free(sh);
    /* an empty batch is nothing to do */
    assert_int_equal(queue_mail_done_batch(f->q, o, 0, f->err,
                                           sizeof(f->err)), Q_OK);
    free(s);
}

static void
test_mail_recover_batch(void **state)
{
    struct fixture *f = *state;
    char t[5][Q_TRACKING_MAX], num[16];
    struct mails *s = calloc(1, sizeof(*s));
    struct q_mail_outcome o;
    struct show *sh;
    struct dels d;
    int64_t now, rec;
    size_t n;
    int i, k = -1;

    assert_non_null(s);
    for (i = 0; i < 5; i++) {
        snprintf(num, sizeof(num), "RB-%d", i);
        mail_handin(f, num, "ppm", t[i]);
    }
    now = wall_ms() + 1000;
    assert_int_equal(claim_batch(f, now, 5, NULL, s, &n), Q_OK);
    assert_int_equal(n, 5);
    /* one outcome recorded, then the process dies with four in flight */
    memset(&o, 0, sizeof(o));
    o.delivery_id = s->id[1];
    o.state = Q_DELIVERED;
    assert_int_equal(queue_mail_done_batch(f->q, &o, 1, f->err,
                                           sizeof(f->err)), Q_OK);
    assert_int_equal(o.result, Q_OK);
    queue_close(f->q);
    assert_int_equal(queue_open(&f->q, f->path, 0, f->err, sizeof(f->err)),
                     Q_OK);
    queue_set_sync(f->q, 0);
    rec = now + 50;
    assert_int_equal(queue_mail_recover(f->q, rec, &k, f->err,
                                        sizeof(f->err)), Q_OK);
    assert_int_equal(k, 4);
    list(f, "ppm", -1, 0, 0, &d);
    for (i = 0; i < 5; i++) {
        if (i == 1) {
            assert_int_equal(d.state[i], Q_DELIVERED);
            continue;
        }
        assert_int_equal(d.state[i], Q_DEFERRED);
        assert_int_equal(d.next_attempt_ms[i], rec);
        assert_int_equal(d.attempts[i], 1);
    }
    sh = show(f, t[3]);
    assert_int_equal(sh->nev, 3);
    assert_string_equal(sh->ev_note[2], "interrupted");
    free(sh);
    /* every one of them is claimed again (a second attempt, the same
     * tracking number and so the same Message-ID); the delivered one not */
    assert_int_equal(claim_batch(f, rec, 32, NULL, s, &n), Q_OK);
    assert_int_equal(n, 4);
    assert_string_equal(s->tracking[5], t[0]);
    assert_string_equal(s->tracking[6], t[2]);
    assert_string_equal(s->tracking[7], t[3]);
    assert_string_equal(s->tracking[8], t[4]);
    for (i = 5; i < 9; i++)
        assert_int_equal(s->attempts[i], 2);
    assert_int_equal(s->id[5], s->id[0]);
    assert_int_equal(claim_batch(f, rec, 32, NULL, s, &n), Q_NOTFOUND);
    free(s);
}

static void
test_op_retry(void **state)
{
    struct fixture *f = *state;
    static const struct q_addressee both[] = {
        { "ppa", Q_CH_PULL }, { "ppm", Q_CH_SMTP }
    };
    char t1[Q_TRACKING_MAX], t2[Q_TRACKING_MAX], t3[Q_TRACKING_MAX],
         t4[Q_TRACKING_MAX];
    struct mails *s = calloc(1, sizeof(*s));
    struct show *sh;
    struct dels d;
    int64_t now, r;
    int n = -1;

    assert_non_null(s);
    handin_ok(f, "RT-1", "<1/>", both, 2, t1);
    mail_handin(f, "RT-2", "ppm", t2);
    mail_handin(f, "RT-3", "ppm", t3);
    mail_handin(f, "RT-4", "ppn", t4);
    now = wall_ms() + 1000;
    r = now + 100;
    assert_int_equal(claim(f, now, NULL, 0, s), Q_OK);          /* RT-1 */
    assert_int_equal(claim(f, now, NULL, 0, s), Q_OK);          /* RT-2 */
    assert_string_equal(s->tracking[1], t2);
    assert_int_equal(queue_mail_done(f->q, s->id[0], Q_DEAD, 0,
                                     "550 5.1.1 no such user", f->err,
                                     sizeof(f->err)), Q_OK);
    assert_int_equal(queue_mail_done(f->q, s->id[1], Q_DEFERRED,
                                     now + 3600000, "421", f->err,
                                     sizeof(f->err)), Q_OK);

    /* dead -> deferred, due now, attempts and last error kept; the pull
     * delivery of the same certificate is not touched */
    assert_int_equal(queue_op_retry(f->q, t1, NULL, r, &n, f->err,
                                    sizeof(f->err)), Q_OK);
    assert_int_equal(n, 1);
    list(f, NULL, -1, 0, 0, &d);
    assert_int_equal(d.channel[0], Q_CH_PULL);
    assert_int_equal(d.state[0], Q_WAITING);
    assert_int_equal(d.next_attempt_ms[0], 0);
    assert_int_equal(d.state[1], Q_DEFERRED);
    assert_int_equal(d.next_attempt_ms[1], r);
    assert_int_equal(d.attempts[1], 1);
    assert_string_equal(d.last_error[1], "550 5.1.1 no such user");
    sh = show(f, t1);
    assert_int_equal(sh->ev_state[sh->nev - 1], Q_DEFERRED);
    assert_string_equal(sh->ev_note[sh->nev - 1], "operator");
    assert_string_equal(sh->ev_partner[sh->nev - 1], "ppm");
    free(sh);
    /* again: already due, nothing changes */
    assert_int_equal(queue_op_retry(f->q, t1, NULL, r, &n, f->err,
                                    sizeof(f->err)), Q_OK);
    assert_int_equal(n, 0);

    /* by partner: the deferred RT-2 is brought forward; RT-3 (waiting,
     * already due) stays; ppn's RT-4 is not touched; a held one is left */
    assert_int_equal(queue_op_hold(f->q, t3, NULL, &n, f->err,
                                   sizeof(f->err)), Q_OK);
    assert_int_equal(n, 1);
    assert_int_equal(queue_op_retry(f->q, NULL, "ppm", r, &n, f->err,
                                    sizeof(f->err)), Q_OK);
    assert_int_equal(n, 1);
    list(f, NULL, -1, Q_CH_SMTP, 0, &d);
    assert_int_equal(d.n, 4);
    assert_int_equal(d.state[1], Q_DEFERRED);
    assert_int_equal(d.next_attempt_ms[1], r);
    assert_int_equal(d.attempts[1], 1);
    assert_int_equal(d.state[2], Q_HELD);
    assert_int_equal(d.next_attempt_ms[2], 0);
    assert_int_equal(d.state[3], Q_WAITING);
    assert_true(d.next_attempt_ms[3] <= now);
    /* ppn's RT-4 was due first; then the two retried ones, counted */
    assert_int_equal(claim(f, r, NULL, 0, s), Q_OK);
    assert_string_equal(s->tracking[2], t4);
    assert_int_equal(claim(f, r, NULL, 0, s), Q_OK);
    assert_int_equal(claim(f, r, NULL, 0, s), Q_OK);
    assert_string_equal(s->tracking[3], t1);
    assert_int_equal(s->attempts[3], 2);
    assert_string_equal(s->tracking[4], t2);
    assert_int_equal(s->attempts[4], 2);

    /* unknown tracking; neither or both selectors */
    assert_int_equal(queue_op_retry(f->q, "ECG19990101-0123456789abcdef",
                                    NULL, r, &n, f->err, sizeof(f->err)),
                     Q_NOTFOUND);
    assert_int_equal(queue_op_retry(f->q, NULL, NULL, r, &n, f->err,
                                    sizeof(f->err)), Q_ERR);
    assert_int_equal(queue_op_retry(f->q, t1, "ppm", r, &n, f->err,
                                    sizeof(f->err)), Q_ERR);
    assert_false(queue_err_transient(f->q));
    /* an unknown partner is not an error: nothing changes */
    assert_int_equal(queue_op_retry(f->q, NULL, "nobody", r, &n, f->err,
                                    sizeof(f->err)), Q_OK);
    assert_int_equal(n, 0);
    free(s);
}

static void
test_op_hold_release(void **state)
{
    struct fixture *f = *state;
    static const struct q_addressee all3[] = {
        { "ppa", Q_CH_PULL }, { "ppb", Q_CH_PULL }, { "ppm", Q_CH_SMTP }
    };
    char t1[Q_TRACKING_MAX], t2[Q_TRACKING_MAX], t3[Q_TRACKING_MAX];
    struct mails *s = calloc(1, sizeof(*s));
    struct status_rows st;
    struct seen e;
    struct show *sh;
    struct dels d;
    int64_t now;
    int n = -1, i, nheld = 0;

    assert_non_null(s);
    handin_ok(f, "H-1", "<h1/>", all3, 3, t1);
    handin_ok(f, "H-2", "<h2/>", to_ab, 2, t2);
    now = wall_ms() + 1000;

    assert_int_equal(queue_op_hold(f->q, t1, NULL, &n, f->err,
                                   sizeof(f->err)), Q_OK);
    assert_int_equal(n, 3);
    /* held: not offered to the partner, not sent */
    memset(&e, 0, sizeof(e));
    assert_int_equal(queue_headers(f->q, "ppa", 10, env_cb, &e, f->err,
                                   sizeof(f->err)), Q_OK);
    assert_int_equal(e.n, 1);
    assert_string_equal(e.tracking[0], t2);
    memset(&e, 0, sizeof(e));
    assert_int_equal(queue_pull(f->q, "ppb", 10, env_cb, &e, f->err,
                                sizeof(f->err)), Q_OK);
    assert_int_equal(e.n, 1);
    assert_string_equal(e.tracking[0], t2);
    assert_int_equal(claim(f, now, NULL, 0, s), Q_NOTFOUND);
    assert_int_equal(next_due(f), 0);
    assert_int_equal(track_state(f, "ppa", t1), Q_HELD);
    sh = show(f, t1);
    assert_int_equal(sh->nev, 6);
    for (i = 3; i < 6; i++) {
        assert_int_equal(sh->ev_state[i], Q_HELD);
        assert_string_equal(sh->ev_note[i], "operator");
    }
    free(sh);
    memset(&st, 0, sizeof(st));
    assert_int_equal(queue_op_status(f->q, status_cb, &st, f->err,
                                     sizeof(f->err)), Q_OK);
    for (i = 0; i < st.n; i++) {
        if (st.state[i] == Q_HELD) {
            nheld += (int)st.count[i];
            assert_int_equal(st.next[i], 0);
        }
    }
    assert_int_equal(nheld, 3);
    /* holding again changes nothing */
    assert_int_equal(queue_op_hold(f->q, t1, NULL, &n, f->err,
                                   sizeof(f->err)), Q_OK);
    assert_int_equal(n, 0);

    /* release: listed again; mail due at the given time, pull not timed */
    assert_int_equal(queue_op_release(f->q, t1, NULL, now, &n, f->err,
                                      sizeof(f->err)), Q_OK);
    assert_int_equal(n, 3);
    list(f, NULL, -1, 0, 0, &d);
    assert_int_equal(d.n, 5);
    for (i = 0; i < 3; i++) {
        assert_int_equal(d.state[i], Q_WAITING);
        assert_int_equal(d.next_attempt_ms[i], d.channel[i] == Q_CH_SMTP ?
                         now : 0);
    }
    memset(&e, 0, sizeof(e));
    assert_int_equal(queue_headers(f->q, "ppa", 10, env_cb, &e, f->err,
                                   sizeof(f->err)), Q_OK);
    assert_int_equal(e.n, 2);
    assert_string_equal(e.tracking[0], t1);
    assert_int_equal(queue_op_release(f->q, t1, NULL, now, &n, f->err,
                                      sizeof(f->err)), Q_OK);
    assert_int_equal(n, 0);
    sh = show(f, t1);
    assert_int_equal(sh->nev, 9);
    assert_int_equal(sh->ev_state[8], Q_WAITING);
    assert_string_equal(sh->ev_note[8], "operator");
    free(sh);

    /* by partner: only ppb's, across certificates; final ones stay */
    assert_int_equal(queue_ack(f->q, "ppb", t2, Q_DELIVERED, NULL, f->err,
                               sizeof(f->err)), Q_OK);
    assert_int_equal(queue_op_hold(f->q, NULL, "ppb", &n, f->err,
                                   sizeof(f->err)), Q_OK);
    assert_int_equal(n, 1);
    list(f, "ppb", -1, 0, 0, &d);
    assert_int_equal(d.state[0], Q_HELD);
    assert_int_equal(d.state[1], Q_DELIVERED);
    list(f, "ppa", Q_WAITING, 0, 0, &d);
    assert_int_equal(d.n, 2);
    assert_int_equal(queue_op_release(f->q, NULL, "ppb", now, &n, f->err,
                                      sizeof(f->err)), Q_OK);
    assert_int_equal(n, 1);

    /* a sending mail can be held; its outcome then no longer applies */
    assert_int_equal(claim(f, now, NULL, 0, s), Q_OK);
    assert_string_equal(s->tracking[0], t1);
    assert_int_equal(queue_op_hold(f->q, NULL, "ppm", &n, f->err,
                                   sizeof(f->err)), Q_OK);
    assert_int_equal(n, 1);
    assert_int_equal(queue_mail_done(f->q, s->id[0], Q_DELIVERED, 0, NULL,
                                     f->err, sizeof(f->err)), Q_NOTFOUND);
    list(f, "ppm", -1, 0, 0, &d);
    assert_int_equal(d.state[0], Q_HELD);
    assert_int_equal(d.attempts[0], 1);

    /* unknown tracking; selectors */
    snprintf(t3, sizeof(t3), "ECG19990101-0123456789abcdef");
    assert_int_equal(queue_op_hold(f->q, t3, NULL, &n, f->err,
                                   sizeof(f->err)), Q_NOTFOUND);
    assert_int_equal(queue_op_release(f->q, t3, NULL, now, &n, f->err,
                                      sizeof(f->err)), Q_NOTFOUND);
    assert_int_equal(queue_op_hold(f->q, NULL, NULL, &n, f->err,
                                   sizeof(f->err)), Q_ERR);
    assert_int_equal(queue_op_release(f->q, t1, "ppm", now, &n, f->err,
                                      sizeof(f->err)), Q_ERR);
    assert_int_equal(queue_op_hold(f->q, NULL, "", &n, f->err,
                                   sizeof(f->err)), Q_ERR);
    list(f, "ppm", -1, 0, 0, &d);
    assert_int_equal(d.state[0], Q_HELD);
    free(s);
}

static void
test_op_purge(void **state)
{
    struct fixture *f = *state;
    static const struct q_addressee four[] = {
        { "ppa", Q_CH_PULL }, { "ppb", Q_CH_PULL },
        { "ppm", Q_CH_SMTP }, { "ppn", Q_CH_SMTP }
    };
    char t1[Q_TRACKING_MAX], t2[Q_TRACKING_MAX];
    struct mails *s = calloc(1, sizeof(*s));
    struct show *sh;
    struct dels d;
    int64_t now;
    int n = -1, i;

    assert_non_null(s);
    handin_ok(f, "PG-1", "<pg/>", four, 4, t1);
    handin_ok(f, "PG-2", "<pg2/>", to_m, 1, t2);
    now = wall_ms() + 1000;
    /* ppm dead, ppa held, ppb delivered, ppn deferred */
    assert_int_equal(claim(f, now, NULL, 0, s), Q_OK);
    assert_string_equal(s->partner[0], "ppm");
    assert_int_equal(queue_mail_done(f->q, s->id[0], Q_DEAD, 0, "550",
                                     f->err, sizeof(f->err)), Q_OK);
    assert_int_equal(claim(f, now, NULL, 0, s), Q_OK);
    assert_string_equal(s->partner[1], "ppn");
    assert_int_equal(queue_mail_done(f->q, s->id[1], Q_DEFERRED, now + 9,
                                     "421", f->err, sizeof(f->err)), Q_OK);
    assert_int_equal(queue_op_hold(f->q, NULL, "ppa", &n, f->err,
                                   sizeof(f->err)), Q_OK);
    assert_int_equal(n, 1);
    assert_int_equal(queue_ack(f->q, "ppb", t1, Q_DELIVERED, NULL, f->err,
                               sizeof(f->err)), Q_OK);

    assert_int_equal(queue_op_purge(f->q, t1, &n, f->err, sizeof(f->err)),
                     Q_OK);
    assert_int_equal(n, 2);
    sh = show(f, t1);
    assert_int_equal(sh->dels.n, 2);
    assert_string_equal(sh->dels.partner[0], "ppb");
    assert_int_equal(sh->dels.state[0], Q_DELIVERED);
    assert_string_equal(sh->dels.partner[1], "ppn");
    assert_int_equal(sh->dels.state[1], Q_DEFERRED);
    /* their history went with them; the others' stays */
    for (i = 0; i < sh->nev; i++)
        assert_true(strcmp(sh->ev_partner[i], "ppb") == 0 ||
                    strcmp(sh->ev_partner[i], "ppn") == 0);
    assert_int_equal(sh->nev, 2 + 3);
    free(sh);
    /* the certificate stays; the other certificate is untouched */
    {
        struct seen e;

        memset(&e, 0, sizeof(e));
        assert_int_equal(queue_track(f->q, "nl-gw", t1, env_cb, &e, f->err,
                                     sizeof(f->err)), Q_OK);
        assert_int_equal(e.n, 1);
    }
    list(f, NULL, -1, 0, 0, &d);
    assert_int_equal(d.n, 3);
    {
        sqlite3 *raw = NULL;
        sqlite3_stmt *q = NULL;

        /* no event row is left without its delivery */
        assert_int_equal(sqlite3_open(f->path, &raw), SQLITE_OK);
        assert_int_equal(sqlite3_prepare_v2(raw, "SELECT count(*) FROM"
                         " event WHERE delivery_id NOT IN"
                         " (SELECT id FROM delivery)", -1, &q, NULL),
                         SQLITE_OK);
        assert_int_equal(sqlite3_step(q), SQLITE_ROW);
        assert_int_equal(sqlite3_column_int(q, 0), 0);
        sqlite3_finalize(q);
        sqlite3_close(raw);
    }
    assert_int_equal(queue_op_check(f->q, f->err, sizeof(f->err)), Q_OK);

    assert_int_equal(queue_op_purge(f->q, t1, &n, f->err, sizeof(f->err)),
                     Q_OK);
    assert_int_equal(n, 0);
    assert_int_equal(queue_op_purge(f->q, "ECG19990101-0123456789abcdef",
                                    &n, f->err, sizeof(f->err)),
                     Q_NOTFOUND);
    assert_int_equal(queue_op_purge(f->q, NULL, &n, f->err,
                                    sizeof(f->err)), Q_NOTFOUND);
    free(s);
}

static void
test_handin_errors(void **state)
{
    struct fixture *f = *state;
    static const struct q_addressee bad_ch[] = {
        { "ppa", Q_CH_PULL }, { "ppb", 7 }
    };
    static const struct q_addressee bad_p[] = { { "", Q_CH_PULL } };
    static const struct q_addressee twice[] = {
        { "ppa", Q_CH_PULL }, { "ppa", Q_CH_PULL }
    };
    char t[Q_TRACKING_MAX], longnum[Q_NUMBER_MAX + 10];
    struct dels d;
    int dup = -1;

    assert_int_equal(handin(f, "E-1", "<e/>", 4, bad_ch, 2, t, &dup),
                     Q_ERR);
    assert_string_equal(t, "");
    assert_int_equal(dup, 0);
    assert_false(queue_err_transient(f->q));
    assert_non_null(strstr(f->err, "channel"));
    assert_int_equal(handin(f, "E-1", "<e/>", 4, bad_p, 1, t, &dup), Q_ERR);
    assert_int_equal(handin(f, "E-1", "<e/>", 4, to_a, 0, t, &dup), Q_ERR);
    memset(longnum, 'n', sizeof(longnum));
    longnum[sizeof(longnum) - 1] = '\0';
    assert_int_equal(handin(f, longnum, "<e/>", 4, to_a, 1, t, &dup), Q_ERR);
    assert_int_equal(handin(f, "", "<e/>", 4, to_a, 1, t, &dup), Q_ERR);
    assert_int_equal(handin(f, "E-1", NULL, 4, to_a, 1, t, &dup), Q_ERR);
    list(f, NULL, -1, 0, 0, &d);
    assert_int_equal(d.n, 0);

    /* an addressee listed twice gets one delivery */
    assert_int_equal(handin(f, "E-2", "<e/>", 4, twice, 2, t, &dup), Q_OK);
    list(f, NULL, -1, 0, 0, &d);
    assert_int_equal(d.n, 1);

    /* empty content is stored as empty */
    assert_int_equal(handin(f, "E-3", NULL, 0, to_ab, 2, t, &dup), Q_OK);
    {
        struct seen s;

        memset(&s, 0, sizeof(s));
        assert_int_equal(queue_pull_one(f->q, "ppb", t, env_cb, &s, f->err,
                                        sizeof(f->err)), Q_OK);
        assert_int_equal(s.n, 1);
        assert_true(s.had_content[0]);
        assert_int_equal(s.content_len[0], 0);
    }
}

static void
test_integrity(void **state)
{
    struct fixture *f = *state;
    char t[Q_TRACKING_MAX];

    handin_ok(f, "IC-1", "<i/>", to_ab, 2, t);
    assert_int_equal(queue_op_check(f->q, f->err, sizeof(f->err)), Q_OK);
    assert_string_equal(f->err, "ok");
}

static void
test_reopen(void **state)
{
    struct fixture *f = *state;
    char t1[Q_TRACKING_MAX], t2[Q_TRACKING_MAX];
    struct seen s;
    struct dels d;
    static const unsigned char bin[] = { 0, 1, '\r', '\n', 0, 0xff, 0 };

    handin_ok(f, "RO-1", "<one/>", to_ab, 2, t1);
    assert_int_equal(handin(f, "RO-2", bin, sizeof(bin), to_a, 1, t2, NULL),
                     Q_OK);
    assert_int_equal(queue_ack(f->q, "ppa", t1, Q_DELIVERED, "fine", f->err,
                               sizeof(f->err)), Q_OK);
    queue_close(f->q);
    f->q = NULL;
    assert_int_equal(queue_open(&f->q, f->path, 0, f->err, sizeof(f->err)),
                     Q_OK);
    list(f, NULL, -1, 0, 0, &d);
    assert_int_equal(d.n, 3);
    assert_int_equal(d.state[0], Q_DELIVERED);
    assert_string_equal(d.last_error[0], "fine");
    assert_int_equal(d.state[1], Q_WAITING);
    memset(&s, 0, sizeof(s));
    assert_int_equal(queue_pull(f->q, "ppa", 10, env_cb, &s, f->err,
                                sizeof(f->err)), Q_OK);
    assert_int_equal(s.n, 1);
    assert_string_equal(s.tracking[0], t2);
    assert_int_equal(s.content_len[0], sizeof(bin));
    assert_memory_equal(s.content[0], bin, sizeof(bin));
    /* duplicates are still recognised after a reopen */
    {
        char t3[Q_TRACKING_MAX];
        int dup = 0;

        assert_int_equal(handin(f, "RO-1", "<one/>", 6, to_ab, 2, t3, &dup),
                         Q_OK);
        assert_int_equal(dup, 1);
        assert_string_equal(t3, t1);
    }
}

static int
file_digest(const char *path, unsigned char *buf, size_t cap, size_t *len)
{
    FILE *fp = fopen(path, "rb");

    if (fp == NULL)
        return -1;
    *len = fread(buf, 1, cap, fp);
    fclose(fp);
    return 0;
}

static void
test_readonly(void **state)
{
    struct fixture *f = *state;
    static unsigned char before[1 << 16], after[1 << 16];
    char t[Q_TRACKING_MAX], t2[Q_TRACKING_MAX], missing[160];
    struct queue *ro = NULL;
    struct status_rows s;
    size_t nb = 0, na = 0;
    struct stat sb;
    sqlite3 *raw = NULL;
    time_t t0;

    handin_ok(f, "RD-1", "<r/>", to_a, 1, t);
    queue_close(f->q);
    f->q = NULL;
    assert_int_equal(file_digest(f->path, before, sizeof(before), &nb), 0);
    assert_true(nb > 0 && nb < sizeof(before));

    snprintf(missing, sizeof(missing), "%s/nope.db", f->dir);
    assert_int_equal(queue_open(&ro, missing, 1, f->err, sizeof(f->err)),
                     Q_ERR);
    assert_null(ro);
    assert_non_null(strstr(f->err, "does not exist"));
    assert_non_null(strstr(f->err, missing));
    assert_int_equal(stat(missing, &sb), -1);

    assert_int_equal(queue_open(&ro, f->path, 1, f->err, sizeof(f->err)),
                     Q_OK);
    memset(&s, 0, sizeof(s));
    assert_int_equal(queue_op_status(ro, status_cb, &s, f->err,
                                     sizeof(f->err)), Q_OK);
    assert_int_equal(s.n, 1);
    assert_int_equal(s.count[0], 1);
    assert_int_equal(handin(&(struct fixture){ .q = ro }, "RD-2", "<x/>", 4,
                            to_a, 1, t2, NULL), Q_ERR);
    assert_string_equal(t2, "");
    assert_int_equal(queue_ack(ro, "ppa", t, Q_DELIVERED, NULL, f->err,
                               sizeof(f->err)), Q_ERR);
    assert_int_equal(queue_op_check(ro, f->err, sizeof(f->err)), Q_OK);

    /* a writer holding the write lock does not block a reader */
    assert_int_equal(sqlite3_open(f->path, &raw), SQLITE_OK);
    assert_int_equal(sqlite3_exec(raw, "BEGIN IMMEDIATE; UPDATE delivery"
                                  " SET attempts = 5", NULL, NULL, NULL),
                     SQLITE_OK);
    t0 = time(NULL);
    memset(&s, 0, sizeof(s));
    assert_int_equal(queue_op_status(ro, status_cb, &s, f->err,
                                     sizeof(f->err)), Q_OK);
    assert_true(time(NULL) - t0 < 2);
    assert_int_equal(s.n, 1);
    assert_int_equal(sqlite3_exec(raw, "ROLLBACK", NULL, NULL, NULL),
                     SQLITE_OK);
    sqlite3_close(raw);
    queue_close(ro);

    assert_int_equal(file_digest(f->path, after, sizeof(after), &na), 0);
    assert_int_equal(na, nb);
    assert_memory_equal(before, after, nb);

    assert_int_equal(queue_open(&f->q, f->path, 0, f->err, sizeof(f->err)),
                     Q_OK);
}

static void
test_schema_version(void **state)
{
    struct fixture *f = *state;
    struct queue *q2 = NULL;
    sqlite3 *raw = NULL;
    char other[160];

    /* a second open of an existing store is fine (idempotent) */
    assert_int_equal(queue_open(&q2, f->path, 0, f->err, sizeof(f->err)),
                     Q_OK);
    queue_close(q2);
    q2 = NULL;

    assert_int_equal(sqlite3_open(f->path, &raw), SQLITE_OK);
    {
        sqlite3_stmt *st = NULL;

        /* version 2 recorded; the pull index is partial */
        assert_int_equal(sqlite3_prepare_v2(raw, "SELECT (SELECT version"
                         " FROM schema_version), sql FROM sqlite_master"
                         " WHERE name = 'delivery_pull'", -1, &st, NULL),
                         SQLITE_OK);
        assert_int_equal(sqlite3_step(st), SQLITE_ROW);
        assert_int_equal(sqlite3_column_int(st, 0), 2);
        assert_non_null(strstr((const char *)sqlite3_column_text(st, 1),
                               "WHERE channel = 1 AND state = 0"));
        sqlite3_finalize(st);
    }
    assert_int_equal(sqlite3_exec(raw, "UPDATE schema_version SET version"
                                  " = 3", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(raw);
    assert_int_equal(queue_open(&q2, f->path, 0, f->err, sizeof(f->err)),
                     Q_ERR);
    assert_null(q2);
    assert_non_null(strstr(f->err, "schema version 3"));
    assert_int_equal(queue_open(&q2, f->path, 1, f->err, sizeof(f->err)),
                     Q_ERR);
    assert_null(q2);

    /* an SQLite file that is not ours is refused, not written to */
    snprintf(other, sizeof(other), "%s/other.db", f->dir);
    assert_int_equal(sqlite3_open(other, &raw), SQLITE_OK);
    assert_int_equal(sqlite3_exec(raw, "CREATE TABLE t (x)", NULL, NULL,
                                  NULL), SQLITE_OK);
    sqlite3_close(raw);
    assert_int_equal(queue_open(&q2, other, 0, f->err, sizeof(f->err)),
                     Q_ERR);
    assert_null(q2);
    assert_non_null(strstr(f->err, "not an ecert-gateway store"));
}

static void
explain(struct fixture *f, const char *which, char *plan, size_t len)
{
    assert_int_equal(queue_explain(f->q, which, plan, len), Q_OK);
    if (getenv("TEST_QUEUE_PLANS") != NULL)
        fprintf(stderr, "-- %s\n%s", which, plan);
}

static void
test_query_plans(void **state)
{
    struct fixture *f = *state;
    char plan[2048];

    explain(f, "pull", plan, sizeof(plan));
    assert_non_null(strstr(plan, "USING COVERING INDEX delivery_pull"));
    assert_null(strstr(plan, "TEMP B-TREE"));
    assert_null(strstr(plan, "SCAN"));

    explain(f, "headers", plan, sizeof(plan));
    assert_non_null(strstr(plan, "USING COVERING INDEX delivery_pull"));
    assert_null(strstr(plan, "TEMP B-TREE"));
    assert_null(strstr(plan, "SCAN"));

    explain(f, "lookup", plan, sizeof(plan));
    assert_non_null(strstr(plan, "INDEX"));
    assert_non_null(strstr(plan, "issuer=? AND number=?"));
    assert_null(strstr(plan, "SCAN"));

    explain(f, "duplicate", plan, sizeof(plan));
    assert_non_null(strstr(plan, "certificate_digest"));
    assert_null(strstr(plan, "TEMP B-TREE"));

    /* status: the counts in key order, then one seek per group */
    explain(f, "status", plan, sizeof(plan));
    assert_non_null(strstr(plan, "SCAN k"));
    assert_non_null(strstr(plan, "INDEX delivery_status (partner=? AND channel=? AND state=?"));
    assert_null(strstr(plan, "SCAN d"));
    assert_null(strstr(plan, "TEMP B-TREE"));
    explain(f, "status_v1", plan, sizeof(plan));
    assert_non_null(strstr(plan, "COVERING INDEX delivery_status"));
    assert_null(strstr(plan, "TEMP B-TREE"));

    explain(f, "ack", plan, sizeof(plan));
    assert_null(strstr(plan, "SCAN"));
    explain(f, "pull_one", plan, sizeof(plan));
    assert_null(strstr(plan, "SCAN"));
    explain(f, "track", plan, sizeof(plan));
    assert_null(strstr(plan, "SCAN c"));

    /* the due scan walks delivery_due in order: no scan, no sort */
    explain(f, "mail_claim", plan, sizeof(plan));
    assert_non_null(strstr(plan, "INDEX delivery_due"));
    assert_non_null(strstr(plan, "next_attempt_ms<?"));
    assert_null(strstr(plan, "SCAN"));
    assert_null(strstr(plan, "TEMP B-TREE"));
    explain(f, "mail_next", plan, sizeof(plan));
    assert_non_null(strstr(plan, "COVERING INDEX delivery_due"));
    assert_null(strstr(plan, "SCAN"));
    assert_null(strstr(plan, "TEMP B-TREE"));

    assert_int_equal(queue_explain(f->q, "nonsense", plan, sizeof(plan)),
                     Q_ERR);
}

/* ---- group commit ------------------------------------------------------- */

/* raw_count - the integer answer of sql on a connection of our own */
static int64_t
raw_count(const char *path, const char *sql)
{
    sqlite3 *raw = NULL;
    sqlite3_stmt *st = NULL;
    int64_t v;

    assert_int_equal(sqlite3_open(path, &raw), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(raw, sql, -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(raw);
    return v;
}

/* A delivery to "ppbad" is refused inside the transaction, after its
 * certificate row was written: the request must be undone alone. */
static void
add_reject_trigger(const char *path)
{
    sqlite3 *raw = NULL;

    assert_int_equal(sqlite3_open(path, &raw), SQLITE_OK);
    assert_int_equal(sqlite3_exec(raw, "CREATE TRIGGER test_reject BEFORE"
                                  " INSERT ON delivery WHEN NEW.partner ="
                                  " 'ppbad' BEGIN SELECT RAISE(ABORT,"
                                  " 'rejected by test'); END", NULL, NULL,
                                  NULL), SQLITE_OK);
    sqlite3_close(raw);
}

#define GC_THREADS  8
#define GC_EACH     200
#define GC_SHARED   (GC_EACH / 10)

enum gc_what { GC_DISTINCT, GC_SHARE, GC_BAD_TX, GC_BAD_ARG };

static enum gc_what
gc_what(int j)
{
    if (j % 10 == 9)
        return GC_SHARE;          /* every thread hands in the same one */
    if (j % 13 == 5)
        return GC_BAD_TX;         /* fails inside the transaction */
    if (j % 17 == 3)
        return GC_BAD_ARG;        /* fails the argument check */
    return GC_DISTINCT;
}

static void
gc_request(int t, int j, char *num, size_t numlen, char *content,
           size_t clen)
{
    switch (gc_what(j)) {
    case GC_SHARE:
        snprintf(num, numlen, "GC-S-%d", j / 10);
        snprintf(content, clen, "<shared n=\"%d\"/>", j / 10);
        break;
    case GC_BAD_TX:
        snprintf(num, numlen, "GC-B-%d-%d", t, j);
        snprintf(content, clen, "<bad t=\"%d\" j=\"%d\"/>", t, j);
        break;
    default:
        snprintf(num, numlen, "GC-%d-%d", t, j);
        snprintf(content, clen, "<c t=\"%d\" j=\"%d\"/>", t, j);
        break;
    }
}

struct gc_worker {
    struct queue *q;
    pthread_barrier_t *start;
    int id;
    int rc[GC_EACH], dup[GC_EACH], transient[GC_EACH];
    char tracking[GC_EACH][Q_TRACKING_MAX];
    int ack_ok, ack_notfound, ack_err;
    char err[512];
};

static void *
gc_worker_run(void *arg)
{
    static const struct q_addressee to_bad[] = {
        { "ppa", Q_CH_PULL }, { "ppbad", Q_CH_PULL }
    };
    static const struct q_addressee to_badch[] = { { "ppa", 9 } };
    struct gc_worker *w = arg;
    char num[32], content[64], err[512];
    int j, rc;

    pthread_barrier_wait(w->start);
    for (j = 0; j < GC_EACH; j++) {
        struct q_handin in = {
            .from = "NL", .to = "DE", .type = 851, .status = 70,
            .number = num, .sender = "nl-gw",
            .to_partners = to_a, .nto = 1,
        };

        gc_request(w->id, j, num, sizeof(num), content, sizeof(content));
        in.content = (const unsigned char *)content;
        in.content_len = strlen(content);
        if (gc_what(j) == GC_BAD_TX) {
            in.to_partners = to_bad;
            in.nto = 2;
        } else if (gc_what(j) == GC_BAD_ARG) {
            in.to_partners = to_badch;
        }
        w->dup[j] = -1;
        w->rc[j] = queue_handin(w->q, &in, w->tracking[j], &w->dup[j], err,
                                sizeof(err));
        w->transient[j] = queue_err_transient(w->q);
        if (w->rc[j] != Q_OK && gc_what(j) != GC_BAD_TX &&
            gc_what(j) != GC_BAD_ARG)
            snprintf(w->err, sizeof(w->err), "%s", err);
        if (w->rc[j] == Q_ERR && gc_what(j) == GC_BAD_TX &&
            strstr(err, "rejected by test") == NULL)
            snprintf(w->err, sizeof(w->err), "%s", err);
    }
    /* acknowledge what was handed in (shared ones by all: idempotent) */
    pthread_barrier_wait(w->start);
    for (j = 0; j < GC_EACH; j++) {
        if (w->rc[j] != Q_OK)
            continue;
        rc = queue_ack(w->q, "ppa", w->tracking[j], Q_DELIVERED, "ok", err,
                       sizeof(err));
        if (rc == Q_OK)
            w->ack_ok++;
        else
            w->ack_err++;
    }
    rc = queue_ack(w->q, "ppa", "ECG19700101-0000000000000000", Q_DELIVERED,
                   NULL, err, sizeof(err));
    if (rc == Q_NOTFOUND)
        w->ack_notfound++;
    else
        w->ack_err++;
    return NULL;
}

static int
cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void
test_group_commit_concurrent(void **state)
{
    struct fixture *f = *state;
    struct gc_worker *w = calloc(GC_THREADS, sizeof(*w));
    char **all = calloc(GC_THREADS * GC_EACH, sizeof(*all));
    pthread_barrier_t start;
    pthread_t th[GC_THREADS];
    char num[32], content[64];
    struct status_rows st;
    uint64_t handins = 0, commits = 0, h2 = 0, c2 = 0;
    int64_t distinct = 0, unique, answered = 0;
    int t, j, k, n, first;

    assert_non_null(w);
    assert_non_null(all);
    add_reject_trigger(f->path);
    for (j = 0; j < GC_EACH; j++)
        distinct += gc_what(j) == GC_DISTINCT;
    unique = GC_THREADS * distinct + GC_SHARED;
    assert_int_equal(pthread_barrier_init(&start, NULL, GC_THREADS), 0);
    for (t = 0; t < GC_THREADS; t++) {
        /* each its own handle, durable (synchronous=FULL) */
        assert_int_equal(queue_open(&w[t].q, f->path, 0, f->err,
                                    sizeof(f->err)), Q_OK);
        w[t].start = &start;
        w[t].id = t;
    }
    for (t = 0; t < GC_THREADS; t++)
        assert_int_equal(pthread_create(&th[t], NULL, gc_worker_run, &w[t]),
                         0);
    for (t = 0; t < GC_THREADS; t++)
        assert_int_equal(pthread_join(th[t], NULL), 0);
    pthread_barrier_destroy(&start);

    n = 0;
    for (t = 0; t < GC_THREADS; t++) {
        if (w[t].err[0] != '\0')
            fprintf(stderr, "worker %d: %s\n", t, w[t].err);
        assert_string_equal(w[t].err, "");
        for (j = 0; j < GC_EACH; j++) {
            switch (gc_what(j)) {
            case GC_BAD_TX:
            case GC_BAD_ARG:
                /* failed alone, told so, not as a temporary failure */
                assert_int_equal(w[t].rc[j], Q_ERR);
                assert_string_equal(w[t].tracking[j], "");
                assert_int_equal(w[t].dup[j], 0);
                assert_false(w[t].transient[j]);
                break;
            case GC_DISTINCT:
                assert_int_equal(w[t].rc[j], Q_OK);
                assert_int_equal(w[t].dup[j], 0);
                all[n++] = w[t].tracking[j];
                answered++;
                break;
            case GC_SHARE:
                assert_int_equal(w[t].rc[j], Q_OK);
                answered++;
                break;
            }
        }
        assert_int_equal(w[t].ack_err, 0);
        assert_int_equal(w[t].ack_notfound, 1);
    }
    /* the same certificate handed in by all: one stored, the first
     * tracking number for everybody, exactly one not a duplicate */
    for (k = 0; k < GC_SHARED; k++) {
        j = 10 * k + 9;
        first = 0;
        for (t = 0; t < GC_THREADS; t++) {
            assert_string_equal(w[t].tracking[j], w[0].tracking[j]);
            first += w[t].dup[j] == 0;
        }
        assert_int_equal(first, 1);
        all[n++] = w[0].tracking[j];
    }
    /* tracking numbers unique */
    assert_int_equal(n, unique);
    qsort(all, (size_t)n, sizeof(*all), cmp_str);
    for (k = 1; k < n; k++)
        assert_true(strcmp(all[k - 1], all[k]) < 0);

    /* every success stored exactly once and readable */
    for (t = 0; t < GC_THREADS; t++) {
        for (j = 0; j < GC_EACH; j++) {
            struct seen s;

            if (w[t].rc[j] != Q_OK)
                continue;
            gc_request(t, j, num, sizeof(num), content, sizeof(content));
            memset(&s, 0, sizeof(s));
            assert_int_equal(queue_pull_one(f->q, "ppa", w[t].tracking[j],
                                            env_cb, &s, f->err,
                                            sizeof(f->err)), Q_OK);
            assert_int_equal(s.n, 1);
            assert_string_equal(s.number[0], num);
            assert_int_equal(s.version[0], 1);
            assert_int_equal(s.content_len[0], strlen(content));
            assert_memory_equal(s.content[0], content, strlen(content));
            assert_int_equal(s.state[0], Q_DELIVERED);
        }
    }
    assert_int_equal(raw_count(f->path, "SELECT count(*) FROM certificate"),
                     unique);
    assert_int_equal(raw_count(f->path, "SELECT count(DISTINCT tracking)"
                               " FROM certificate"), unique);
    assert_int_equal(raw_count(f->path, "SELECT count(*) FROM certificate"
                               " WHERE number LIKE 'GC-B-%'"), 0);
    assert_int_equal(raw_count(f->path, "SELECT count(*) FROM delivery"),
                     unique);
    assert_int_equal(raw_count(f->path, "SELECT count(*) FROM delivery"
                               " WHERE partner = 'ppbad'"), 0);
    /* creation and one acknowledgement each, however often acknowledged */
    assert_int_equal(raw_count(f->path, "SELECT count(*) FROM event"),
                     2 * unique);
    memset(&st, 0, sizeof(st));
    assert_int_equal(queue_op_status(f->q, status_cb, &st, f->err,
                                     sizeof(f->err)), Q_OK);
    assert_int_equal(st.n, 1);
    assert_int_equal(st.state[0], Q_DELIVERED);
    assert_int_equal(st.count[0], unique);

    /* group commit happened: fewer commits than hand-ins */
    queue_stats(w[0].q, &handins, &commits);
    queue_stats(f->q, &h2, &c2);
    assert_int_equal(h2, handins);              /* process-wide */
    assert_int_equal(c2, commits);
    if (getenv("TEST_QUEUE_PLANS") != NULL)
        fprintf(stderr, "group commit: %llu hand-ins in %llu commits\n",
                (unsigned long long)handins, (unsigned long long)commits);
    assert_int_equal(handins, (uint64_t)answered);
    assert_true(commits > 0);
    assert_true(commits < handins);

    for (t = 0; t < GC_THREADS; t++)
        queue_close(w[t].q);
    assert_int_equal(queue_op_check(f->q, f->err, sizeof(f->err)), Q_OK);
    assert_string_equal(f->err, "ok");
    free(all);
    free(w);
}

/* One batch made on purpose: the write lock is held elsewhere while the
 * first hand-in leads (and waits for it) and the others queue up; they
 * then go in together, in arrival order. */
struct gc_one {
    struct queue *q;
    const char *number, *content;
    const struct q_addressee *to;
    size_t nto;
    volatile int started;
    int rc, dup, transient;
    char tracking[Q_TRACKING_MAX];
    char err[512];
};

static void *
gc_one_run(void *arg)
{
    struct gc_one *o = arg;
    struct q_handin in = {
        .from = "NL", .to = "DE", .type = 851, .status = 70,
        .number = o->number, .sender = "nl-gw",
        .content = (const unsigned char *)o->content,
        .content_len = strlen(o->content),
        .to_partners = o->to, .nto = o->nto,
    };

    __atomic_store_n(&o->started, 1, __ATOMIC_SEQ_CST);
    o->rc = queue_handin(o->q, &in, o->tracking, &o->dup, o->err,
                         sizeof(o->err));
    o->transient = queue_err_transient(o->q);
    return NULL;
}

static void
test_group_commit_batch(void **state)
{
    struct fixture *f = *state;
    static const struct q_addressee to_bad[] = {
        { "ppa", Q_CH_PULL }, { "ppbad", Q_CH_PULL }
    };
    struct gc_one o[5] = {
        { .number = "GB-0", .content = "<zero/>", .to = to_a, .nto = 1 },
        { .number = "GB-1", .content = "<one/>", .to = to_ab, .nto = 2 },
        { .number = "GB-2", .content = "<two/>", .to = to_bad, .nto = 2 },
        { .number = "GB-1", .content = "<one/>", .to = to_ab, .nto = 2 },
        { .number = "GB-1", .content = "<one, v2/>", .to = to_a, .nto = 1 },
    };
    struct timespec pause = { 0, 200 * 1000000L };
    struct timespec settle = { 0, 600 * 1000000L };
    pthread_t th[5];
    uint64_t handins = 0, commits = 0;
    sqlite3 *raw = NULL;
    struct seen s;
    int i;

    add_reject_trigger(f->path);
    for (i = 0; i < 5; i++)
        assert_int_equal(queue_open(&o[i].q, f->path, 0, f->err,
                                    sizeof(f->err)), Q_OK);
    assert_int_equal(sqlite3_open(f->path, &raw), SQLITE_OK);
    assert_int_equal(sqlite3_exec(raw, "BEGIN IMMEDIATE", NULL, NULL, NULL),
                     SQLITE_OK);
    for (i = 0; i < 5; i++) {
        assert_int_equal(pthread_create(&th[i], NULL, gc_one_run, &o[i]), 0);
        while (!__atomic_load_n(&o[i].started, __ATOMIC_SEQ_CST))
            sched_yield();
        nanosleep(&pause, NULL);     /* it is queued before the next */
    }
    nanosleep(&settle, NULL);
    assert_int_equal(sqlite3_exec(raw, "ROLLBACK", NULL, NULL, NULL),
                     SQLITE_OK);
    sqlite3_close(raw);
    for (i = 0; i < 5; i++)
        assert_int_equal(pthread_join(th[i], NULL), 0);

    for (i = 0; i < 5; i++)
        if (i != 2 && o[i].rc != Q_OK)
            fprintf(stderr, "hand-in %d: %s\n", i, o[i].err);
    assert_int_equal(o[0].rc, Q_OK);
    assert_int_equal(o[1].rc, Q_OK);
    assert_int_equal(o[1].dup, 0);
    /* the bad one fails alone, with its own message */
    assert_int_equal(o[2].rc, Q_ERR);
    assert_string_equal(o[2].tracking, "");
    assert_false(o[2].transient);
    assert_non_null(strstr(o[2].err, "rejected by test"));
    /* a duplicate of a hand-in of the same batch */
    assert_int_equal(o[3].rc, Q_OK);
    assert_int_equal(o[3].dup, 1);
    assert_string_equal(o[3].tracking, o[1].tracking);
    /* the next version, also in the same batch */
    assert_int_equal(o[4].rc, Q_OK);
    assert_int_equal(o[4].dup, 0);
    assert_string_not_equal(o[4].tracking, o[1].tracking);

    /* the first led alone; the four others went in one commit */
    queue_stats(f->q, &handins, &commits);
    assert_int_equal(handins, 4);
    assert_int_equal(commits, 2);

    memset(&s, 0, sizeof(s));
    assert_int_equal(queue_pull(f->q, "ppb", 10, env_cb, &s, f->err,
                                sizeof(f->err)), Q_OK);
    assert_int_equal(s.n, 1);
    assert_string_equal(s.tracking[0], o[1].tracking);
    memset(&s, 0, sizeof(s));
    assert_int_equal(queue_pull(f->q, "ppa", 10, env_cb, &s, f->err,
                                sizeof(f->err)), Q_OK);
    assert_int_equal(s.n, 3);
    assert_string_equal(s.tracking[0], o[0].tracking);
    assert_string_equal(s.tracking[1], o[1].tracking);
    assert_string_equal(s.tracking[2], o[4].tracking);
    assert_int_equal(s.version[2], 2);
    assert_int_equal(raw_count(f->path, "SELECT count(*) FROM certificate"
                               " WHERE number = 'GB-2'"), 0);
    for (i = 0; i < 5; i++)
        queue_close(o[i].q);
    assert_int_equal(queue_op_check(f->q, f->err, sizeof(f->err)), Q_OK);
}

/* A read-only handle never joins; its counters stay 0. */
static void
test_group_commit_readonly(void **state)
{
    struct fixture *f = *state;
    struct queue *ro = NULL;
    uint64_t h = 1, c = 1;
    char t[Q_TRACKING_MAX];

    handin_ok(f, "GR-1", "<r/>", to_a, 1, t);
    queue_stats(f->q, &h, &c);
    assert_int_equal(h, 1);
    assert_int_equal(c, 1);
    assert_int_equal(queue_open(&ro, f->path, 1, f->err, sizeof(f->err)),
                     Q_OK);
    queue_stats(ro, &h, &c);
    assert_int_equal(h, 0);
    assert_int_equal(c, 0);
    assert_int_equal(handin(&(struct fixture){ .q = ro }, "GR-2", "<x/>", 4,
                            to_a, 1, t, NULL), Q_ERR);
    queue_close(ro);
    /* a duplicate counts as answered */
    handin(f, "GR-1", "<r/>", 4, to_a, 1, t, NULL);
    queue_stats(f->q, &h, &c);
    assert_int_equal(h, 2);
    assert_int_equal(c, 2);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names),
        cmocka_unit_test_setup_teardown(test_handin_and_pull_bytes, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_sha256_known, setup, teardown),
        cmocka_unit_test_setup_teardown(test_state_machine, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ack_rules, setup, teardown),
        cmocka_unit_test_setup_teardown(test_duplicate, setup, teardown),
        cmocka_unit_test_setup_teardown(test_replacement, setup, teardown),
        cmocka_unit_test_setup_teardown(test_isolation, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sender_track, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sender_summary_ranks, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_limits, setup, teardown),
        cmocka_unit_test_setup_teardown(test_op_status, setup, teardown),
        cmocka_unit_test_setup_teardown(test_status_counts, setup, teardown),
        cmocka_unit_test_setup_teardown(test_upgrade_v1, setup, teardown),
        cmocka_unit_test_setup_teardown(test_op_list, setup, teardown),
        cmocka_unit_test_setup_teardown(test_op_show, setup, teardown),
        cmocka_unit_test_setup_teardown(test_mail_claim_order, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_mail_claim_state, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_mail_skip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_mail_concurrent_claims, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_mail_concurrent_batch_claims,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_mail_done, setup, teardown),
        cmocka_unit_test_setup_teardown(test_mail_recover, setup, teardown),
        cmocka_unit_test_setup_teardown(test_mail_next_due, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_mail_claim_batch, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_mail_claim_batch_nogroup, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_mail_done_batch, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_mail_recover_batch, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_op_retry, setup, teardown),
        cmocka_unit_test_setup_teardown(test_op_hold_release, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_op_purge, setup, teardown),
        cmocka_unit_test_setup_teardown(test_handin_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_integrity, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reopen, setup, teardown),
        cmocka_unit_test_setup_teardown(test_readonly, setup, teardown),
        cmocka_unit_test_setup_teardown(test_schema_version, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_query_plans, setup, teardown),
        cmocka_unit_test_setup_teardown(test_group_commit_concurrent, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_group_commit_batch, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_group_commit_readonly, setup,
                                        teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
