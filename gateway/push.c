/*
 * push.c - the mail push workers inside ecertd.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * Each worker thread has its own store handle.  It claims a batch: the
 * oldest due mail delivery whose relay is not already at its concurrency
 * limit, and with it up to mail.batch - 1 more due deliveries for the same
 * relay, in one durable transaction (state sending).  It builds and signs
 * the messages outside any lock, hands them to the relay in one SMTP
 * session, and records all their outcomes in one transaction before it
 * claims again: two commits per batch instead of two per message, one
 * connection, EHLO (and STARTTLS, AUTH) per batch instead of per message.
 * A relay's `concurrency` counts its sessions, each sending one message
 * at a time, so a slow or dead relay occupies at most that many workers
 * and other partners' mail keeps moving; the SOAP side never waits for
 * mail.  A crash between the relay's 250 and the store update leaves the
 * batch sending; at start-up it becomes due again and every message of it
 * is resent with its same Message-ID (at-least-once).
 */
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "config.h"
#include "log.h"
#include "push.h"
#include "queue.h"

#define IDLE_WAIT_MS 1000        /* longest sleep when nothing is due */
#define DONE_TRIES   60          /* seconds to keep trying to record */

_Static_assert(CFG_MAIL_BATCH_MAX <= Q_MAIL_BATCH_MAX,
               "mail.batch must fit one store claim");

struct push {
    const struct config *cfg;
    struct push_signer *signer;
    X509 **recipient;            /* per partner index, NULL: sign only */
    int *busy;                   /* sessions in flight per relay */
    pthread_mutex_t mu;           /* busy, stopping, kicked */
    pthread_cond_t cv;
    pthread_mutex_t claim_mu;     /* one claim at a time: the relay limit
                                     is checked and taken atomically */
    int stopping;
    int kicked;
    pthread_t *tid;
    struct queue **q;            /* one store handle per thread */
    int nthreads, started;
};

/* One claimed delivery and what became of it. */
struct job {
    const struct partner *partner;   /* NULL: no longer receives mail */
    int64_t delivery_id;
    int attempts;
    int64_t created_ms;
    char tracking[Q_TRACKING_MAX];
    char from[8], to[8];
    char number[Q_NUMBER_MAX];
    int type, status, version;
    unsigned char *content;      /* a copy, malloc'd */
    size_t content_len;
    char *msg;                   /* built message, malloc'd */
    size_t msglen;
    char err[256];               /* why it could not be built */
    int outcome;                 /* enum push_outcome */
    char reply[PUSH_REPLY_MAX];
};

/* What one worker claims and sends at once: due deliveries of one relay.
 * The arrays hold cfg->mail_batch entries and live as long as the worker. */
struct batch {
    struct push *p;
    int relay;                   /* index into cfg->relays, or nrelays for
                                    partners that no longer have mail */
    size_t n;
    struct job *jobs;
    struct push_mail *mails;     /* the built messages, for the session */
    size_t *mail_job;            /* mails[k] is jobs[mail_job[k]] */
    struct q_mail_outcome *out;
    int *full;                   /* per relay: at its limit (claim time) */
};

static int64_t
now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t
push_backoff_ms(int attempts, int first_s, double factor, int max_s,
                double rnd)
{
    double d = (double)first_s * pow(factor, attempts > 1 ? attempts - 1 : 0);

    if (d > (double)max_s)
        d = (double)max_s;
    d *= 0.9 + 0.2 * rnd;                    /* +-10% jitter */
    return (int64_t)(d * 1000.0);
}
/* ---- set-up ---------------------------------------------------------------- */

int
push_init(const struct config *cfg, struct push **out, char *err,
          size_t errlen)
{
    struct push *p = NULL;
    size_t i;
    int rc = -1;

    *out = NULL;
    if (cfg->mail_sender == NULL)
        return 0;                            /* no mail push configured */
    p = calloc(1, sizeof(*p));
    if (p == NULL)
        goto nomem;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    pthread_mutex_init(&p->claim_mu, NULL);
    p->cfg = cfg;
    p->recipient = calloc(cfg->npartners ? cfg->npartners : 1,
                          sizeof(*p->recipient));
    p->busy = calloc(cfg->nrelays ? cfg->nrelays : 1, sizeof(*p->busy));
    p->nthreads = cfg->mail_workers;
    p->tid = calloc((size_t)p->nthreads, sizeof(*p->tid));
    p->q = calloc((size_t)p->nthreads, sizeof(*p->q));
    if (p->recipient == NULL || p->busy == NULL || p->tid == NULL ||
        p->q == NULL)
        goto nomem;
    if (push_signer_load(cfg->sign_cert, cfg->sign_key, cfg->sign_chain,
                         &p->signer, err, errlen) != 0)
        goto out;
    for (i = 0; i < cfg->npartners; i++) {
        const struct partner_mail *m = cfg->partners[i].mail;

        if (m != NULL && m->certificate != NULL &&
            push_recipient_load(m->certificate, &p->recipient[i], err,
                                errlen) != 0)
            goto out;
    }
    *out = p;
    p = NULL;
    rc = 0;
    goto out;
nomem:
    snprintf(err, errlen, "out of memory");
out:
    if (p != NULL) {
        p->started = 0;
        push_stop(p);
    }
    return rc;
}

/* ---- one batch ---------------------------------------------------------------- */

static void wait_ms(struct push *p, int64_t ms);

static int
is_stopping(struct push *p)
{
    int v;

    pthread_mutex_lock(&p->mu);
    v = p->stopping;
    pthread_mutex_unlock(&p->mu);
    return v;
}

/* The store's grouping of due mail: a partner's relay, so that a batch
 * can share one session; -1 (not now) when that relay is at its limit.
 * Partners that lost their mail group are claimed apart, to be deferred
 * with the reason. */
static int
group_cb(void *arg, const char *partner_id)
{
    const struct batch *b = arg;
    const struct config *cfg = b->p->cfg;
    const struct partner *pt = config_partner_by_id(cfg, partner_id);

    if (pt == NULL || pt->mail == NULL)
        return (int)cfg->nrelays;
    return b->full[pt->mail->relay] ? -1 : pt->mail->relay;
}

/* After the claim's commit, under the claim lock: copy what the message
 * needs, nothing more. */
static int
claim_cb(void *arg, const struct q_mail *m)
{
    struct batch *b = arg;
    const struct config *cfg = b->p->cfg;
    struct job *j;

    if (b->n >= (size_t)cfg->mail_batch)      /* the store keeps to max */
        return 0;
    j = &b->jobs[b->n++];
    memset(j, 0, sizeof(*j));
    j->delivery_id = m->delivery_id;
    j->attempts = m->attempts;
    j->created_ms = m->created_ms;
    snprintf(j->tracking, sizeof(j->tracking), "%s", m->tracking);
    snprintf(j->from, sizeof(j->from), "%s", m->from);
    snprintf(j->to, sizeof(j->to), "%s", m->to);
    snprintf(j->number, sizeof(j->number), "%s", m->number);
    j->type = m->type;
    j->status = m->status;
    j->version = m->version;
    j->partner = config_partner_by_id(cfg, m->partner);
    if (j->partner == NULL || j->partner->mail == NULL) {
        j->partner = NULL;
        b->relay = (int)cfg->nrelays;
        snprintf(j->err, sizeof(j->err), "partner %.64s no longer receives "
                 "mail (configuration changed)", m->partner);
        return 0;
    }
    b->relay = j->partner->mail->relay;       /* the same for the batch */
    j->content = malloc(m->content_len ? m->content_len : 1);
    if (j->content == NULL) {
        snprintf(j->err, sizeof(j->err), "out of memory");
        return 0;
    }
    memcpy(j->content, m->content, m->content_len);
    j->content_len = m->content_len;
    return 0;
}

/* Outside the lock: build and sign (or encrypt) one message. */
static void
build_message(struct push *p, struct job *j)
{
    const struct config *cfg = p->cfg;
    struct push_message pm;
    size_t idx;

    if (j->partner == NULL || j->content == NULL)
        return;
    idx = (size_t)(j->partner - cfg->partners);
    memset(&pm, 0, sizeof(pm));
    pm.from_addr = cfg->mail_sender;
    pm.to_addrs = (const char *const *)j->partner->mail->to;
    pm.nto = j->partner->mail->nto;
    pm.msgid_domain = cfg->mail_ehlo;
    pm.tracking = j->tracking;
    pm.partner = j->partner->id;
    pm.issuer = j->from;
    pm.dest = j->to;
    pm.number = j->number;
    pm.type = j->type;
    pm.status = j->status;
    pm.version = j->version;
    pm.date = time(NULL);
    pm.content = j->content;
    pm.content_len = j->content_len;
    if (push_build(p->signer, p->recipient[idx], &pm, &j->msg, &j->msglen,
                   j->err, sizeof(j->err)) != 0)
        j->msg = NULL;
}

/* Build every message of the batch, then send the ones that could be
 * built in one session; the others are deferred with the reason. */
static void
batch_send(struct batch *b)
{
    const struct config *cfg = b->p->cfg;
    const struct relay *rl;
    struct push_relay r;
    size_t i, k = 0;

    for (i = 0; i < b->n; i++) {
        struct job *j = &b->jobs[i];

        build_message(b->p, j);
        if (j->msg == NULL) {
            j->outcome = PUSH_RETRY;
            snprintf(j->reply, sizeof(j->reply), "cannot build message: %s",
                     j->err);
            continue;
        }
        memset(&b->mails[k], 0, sizeof(b->mails[k]));
        b->mails[k].to = (const char *const *)j->partner->mail->to;
        b->mails[k].nto = j->partner->mail->nto;
        b->mails[k].msg = j->msg;
        b->mails[k].msglen = j->msglen;
        b->mail_job[k++] = i;
    }
    if (k == 0)
        return;
    rl = &cfg->relays[b->relay];
    memset(&r, 0, sizeof(r));
    r.host = rl->host;
    r.port = rl->port;
    r.starttls = rl->starttls;
    r.ca = rl->ca;
    r.user = rl->auth_user;
    r.password = rl->auth_password;
    r.ehlo = cfg->mail_ehlo;
    r.timeout = cfg->mail_timeout;
    push_smtp_send_batch(&r, cfg->mail_sender, b->mails, k);
    for (i = 0; i < k; i++) {
        struct job *j = &b->jobs[b->mail_job[i]];

        j->outcome = b->mails[i].outcome;
        snprintf(j->reply, sizeof(j->reply), "%s", b->mails[i].reply);
    }
}

/* The store outcome of job j (at now): delivered, dead, or deferred by
 * the retry policy until max_age makes it dead. */
static void
job_outcome(const struct config *cfg, struct job *j, int64_t now,
            struct q_mail_outcome *o)
{
    char note[PUSH_REPLY_MAX + 64];
    unsigned int seed = (unsigned int)(j->delivery_id * 2654435761u) ^
                        (unsigned int)time(NULL);

    memset(o, 0, sizeof(*o));
    o->delivery_id = j->delivery_id;
    o->error = j->reply;
    switch (j->outcome) {
    case PUSH_SENT:
        o->state = Q_DELIVERED;
        break;
    case PUSH_FAIL:
        o->state = Q_DEAD;
        break;
    default:
        if (now - j->created_ms >= (int64_t)cfg->retry_max_age * 1000) {
            o->state = Q_DEAD;
            snprintf(note, sizeof(note), "gave up after %d attempts: %s",
                     j->attempts, j->reply);
            snprintf(j->reply, sizeof(j->reply), "%.*s",
                     (int)sizeof(j->reply) - 1, note);
        } else {
            o->state = Q_DEFERRED;
            o->next_ms = now + push_backoff_ms(j->attempts, cfg->retry_first,
                                               cfg->retry_factor,
                                               cfg->retry_max_delay,
                                               (double)rand_r(&seed) /
                                               ((double)RAND_MAX + 1.0));
        }
        break;
    }
}

/* Record every outcome of the batch in one transaction, and log one line
 * per message.  The outcomes must be recorded: a store that is busy or
 * full gets asked again (the deliveries stay sending meanwhile, and
 * start-up recovery covers a stop). */
static void
batch_record(struct batch *b, struct queue *q, long ms)
{
    const struct config *cfg = b->p->cfg;
    char err[512];
    int64_t now = now_ms();
    size_t i;
    int tries, done;

    for (i = 0; i < b->n; i++)
        job_outcome(cfg, &b->jobs[i], now, &b->out[i]);
    for (tries = 0;; tries++) {
        done = queue_mail_done_batch(q, b->out, b->n, err, sizeof(err));
        if (done == Q_OK || tries == DONE_TRIES || is_stopping(b->p))
            break;
        log_warn("push tracking=%s: cannot record %zu outcomes yet: %s",
                 b->jobs[0].tracking, b->n, err);
        wait_ms(b->p, IDLE_WAIT_MS);
    }
    if (done != Q_OK)                 /* left sending: recovered at start */
        log_error("push tracking=%s: cannot record %zu outcomes: %s",
                  b->jobs[0].tracking, b->n, err);
    for (i = 0; i < b->n; i++) {
        const struct job *j = &b->jobs[i];

        if (b->out[i].result == Q_NOTFOUND)
            log_info("push tracking=%s: moved by the operator while "
                     "sending; outcome not recorded", j->tracking);
        log_info("push partner=%s tracking=%s attempt=%d batch=%zu "
                 "outcome=%s ms=%ld reply=\"%s\"",
                 j->partner ? j->partner->id : "-", j->tracking, j->attempts,
                 b->n, q_state_name(b->out[i].state), ms, j->reply);
    }
}

static void
batch_clear(struct batch *b)
{
    size_t i;

    for (i = 0; i < b->n; i++) {
        free(b->jobs[i].msg);
        free(b->jobs[i].content);
    }
    b->n = 0;
    b->relay = -1;
}

static void
batch_free(struct batch *b)
{
    if (b == NULL)
        return;
    batch_clear(b);
    free(b->jobs);
    free(b->mails);
    free(b->mail_job);
    free(b->out);
    free(b->full);
    free(b);
}

static struct batch *
batch_new(struct push *p)
{
    const struct config *cfg = p->cfg;
    size_t n = (size_t)cfg->mail_batch;
    struct batch *b = calloc(1, sizeof(*b));

    if (b == NULL)
        return NULL;
    b->p = p;
    b->relay = -1;
    b->jobs = calloc(n, sizeof(*b->jobs));
    b->mails = calloc(n, sizeof(*b->mails));
    b->mail_job = calloc(n, sizeof(*b->mail_job));
    b->out = calloc(n, sizeof(*b->out));
    b->full = calloc(cfg->nrelays + 1, sizeof(*b->full));
    if (b->jobs == NULL || b->mails == NULL || b->mail_job == NULL ||
        b->out == NULL || b->full == NULL) {
        batch_free(b);
        return NULL;
    }
    return b;
}

/* ---- the workers --------------------------------------------------------------- */

struct worker_arg {
    struct push *p;
    int n;
};

static void
wait_ms(struct push *p, int64_t ms)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (ms % 1000) * 1000000;
    if (ts.tv_nsec >= 1000000000) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000;
    }
    pthread_mutex_lock(&p->mu);
    while (!p->stopping && !p->kicked)
        if (pthread_cond_timedwait(&p->cv, &p->mu, &ts) == ETIMEDOUT)
            break;
    p->kicked = 0;
    pthread_mutex_unlock(&p->mu);
}

/* Under claim_mu: which relays are full, the claim, and taking the relay
 * slot happen as one step for all workers.  *nfull = relays at their
 * limit.  Returns queue_mail_claim_batch's answer. */
static int
claim(struct batch *b, struct queue *q, int64_t lease, size_t *nfull,
      char *err, size_t errlen)
{
    struct push *p = b->p;
    const struct config *cfg = p->cfg;
    size_t r;
    int rc;

    *nfull = 0;
    pthread_mutex_lock(&p->claim_mu);
    pthread_mutex_lock(&p->mu);
    if (p->stopping) {
        pthread_mutex_unlock(&p->mu);
        pthread_mutex_unlock(&p->claim_mu);
        return Q_NOTFOUND;
    }
    for (r = 0; r < cfg->nrelays; r++) {
        b->full[r] = p->busy[r] >= cfg->relays[r].concurrency;
        *nfull += (size_t)b->full[r];
    }
    pthread_mutex_unlock(&p->mu);
    rc = queue_mail_claim_batch(q, now_ms(), lease, (size_t)cfg->mail_batch,
                                group_cb, b, claim_cb, b, NULL, err, errlen);
    if (rc == Q_OK && b->relay >= 0 && (size_t)b->relay < cfg->nrelays) {
        pthread_mutex_lock(&p->mu);
        p->busy[b->relay]++;
        pthread_mutex_unlock(&p->mu);
    }
    pthread_mutex_unlock(&p->claim_mu);
    return rc;
}

/* Give the batch's relay slot back and wake a worker waiting for it. */
static void
release(struct batch *b)
{
    struct push *p = b->p;

    if (b->relay < 0 || (size_t)b->relay >= p->cfg->nrelays)
        return;
    pthread_mutex_lock(&p->mu);
    p->busy[b->relay]--;
    p->kicked = 1;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
}

static void *
worker_main(void *arg)
{
    struct push *p = ((struct worker_arg *)arg)->p;
    struct queue *q = p->q[((struct worker_arg *)arg)->n];
    const struct config *cfg = p->cfg;
    struct batch *b;
    struct timespec t0, t1;
    char err[512];
    /* The lease of a claim: every SMTP step of a full batch timing out. */
    int64_t lease = ((int64_t)cfg->mail_timeout * (1 + 5 * cfg->mail_batch) +
                     60) * 1000;

    free(arg);
    b = batch_new(p);
    if (b == NULL) {
        log_error("push: out of memory");
        return NULL;
    }
    while (!is_stopping(p)) {
        size_t nfull;
        int64_t next = 0;
        int rc;

        rc = claim(b, q, lease, &nfull, err, sizeof(err));
        if (rc == Q_NOTFOUND) {
            if (queue_mail_next_due(q, &next, err, sizeof(err)) != Q_OK)
                next = 0;
            next = next > 0 ? next - now_ms() : IDLE_WAIT_MS;
            if (next < 1)   /* due, but its relay is full: wait for a slot */
                next = nfull > 0 ? IDLE_WAIT_MS : 1;
            wait_ms(p, next > IDLE_WAIT_MS ? IDLE_WAIT_MS : next);
            continue;
        }
        if (rc != Q_OK) {
            log_error("push: %s", err);
            wait_ms(p, IDLE_WAIT_MS);
            continue;
        }
        push_kick(p);                  /* more may be due: wake another */
        clock_gettime(CLOCK_MONOTONIC, &t0);
        batch_send(b);
        clock_gettime(CLOCK_MONOTONIC, &t1);
        batch_record(b, q, (long)((t1.tv_sec - t0.tv_sec) * 1000 +
                                  (t1.tv_nsec - t0.tv_nsec) / 1000000));
        release(b);
        batch_clear(b);
    }
    batch_free(b);
    return NULL;
}

int
push_start(struct push *p, char *err, size_t errlen)
{
    int i, n = 0;

    if (p == NULL)
        return 0;
    for (i = 0; i < p->nthreads; i++)
        if (queue_open(&p->q[i], p->cfg->store, 0, err, errlen) != Q_OK)
            return -1;
    if (queue_mail_recover(p->q[0], now_ms(), &n, err, errlen) != Q_OK)
        return -1;
    if (n > 0)
        log_info("push: %d mail deliveries were in flight at the last stop; "
                 "due again now", n);
    for (i = 0; i < p->nthreads; i++) {
        struct worker_arg *a = malloc(sizeof(*a));

        if (a == NULL) {
            snprintf(err, errlen, "out of memory");
            return -1;
        }
        a->p = p;
        a->n = i;
        if (pthread_create(&p->tid[i], NULL, worker_main, a) != 0) {
            free(a);
            snprintf(err, errlen, "cannot start push thread: %s",
                     strerror(errno));
            return -1;
        }
        p->started++;
    }
    log_info("push: %d mail workers, %zu relays, up to %d messages per "
             "session", p->nthreads, p->cfg->nrelays, p->cfg->mail_batch);
    return 0;
}

void
push_kick(struct push *p)
{
    if (p == NULL)
        return;
    pthread_mutex_lock(&p->mu);
    p->kicked = 1;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
}

void
push_stop(struct push *p)
{
    size_t i;
    int t;

    if (p == NULL)
        return;
    pthread_mutex_lock(&p->mu);
    p->stopping = 1;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    for (t = 0; t < p->started; t++)
        pthread_join(p->tid[t], NULL);
    for (t = 0; p->q != NULL && t < p->nthreads; t++)
        if (p->q[t] != NULL)
            queue_close(p->q[t]);
    for (i = 0; p->recipient != NULL && i < p->cfg->npartners; i++)
        X509_free(p->recipient[i]);
    push_signer_free(p->signer);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv);
    pthread_mutex_destroy(&p->claim_mu);
    free(p->recipient);
    free(p->busy);
    free(p->tid);
    free(p->q);
    free(p);
}
