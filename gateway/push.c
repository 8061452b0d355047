/*
 * push.c - the mail push workers inside ecertd.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * Each worker thread has its own store handle.  It claims the oldest due
 * mail delivery whose relay is not already at its concurrency limit
 * (the claim is durable: state sending), builds and signs the message,
 * hands it to the relay, and records the outcome durably before it takes
 * the next one.  A slow or dead relay occupies at most its own
 * `concurrency` workers, so other partners' mail keeps moving, and the
 * SOAP side never waits for mail.  A crash between the relay's 250 and
 * the store update leaves the delivery sending; at start-up it becomes
 * due again and is resent with the same Message-ID (at-least-once).
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

struct push {
    const struct config *cfg;
    struct push_signer *signer;
    X509 **recipient;            /* per partner index, NULL: sign only */
    int *busy;                   /* messages in flight per relay */
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

struct job {
    struct push *p;
    const struct partner *partner;
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
    char err[256];
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

/* ---- one message ------------------------------------------------------------- */

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

/* Under the claim lock: copy what the message needs, nothing more. */
static int
claim_cb(void *arg, const struct q_mail *m)
{
    struct job *j = arg;

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
    j->partner = config_partner_by_id(j->p->cfg, m->partner);
    if (j->partner == NULL || j->partner->mail == NULL) {
        snprintf(j->err, sizeof(j->err), "partner %.64s no longer receives "
                 "mail (configuration changed)", m->partner);
        return 0;
    }
    j->content = malloc(m->content_len ? m->content_len : 1);
    if (j->content == NULL) {
        snprintf(j->err, sizeof(j->err), "out of memory");
        return 0;
    }
    memcpy(j->content, m->content, m->content_len);
    j->content_len = m->content_len;
    return 0;
}

/* Outside the lock: build and sign (or encrypt) the message. */
static void
build_message(struct job *j)
{
    const struct config *cfg = j->p->cfg;
    struct push_message pm;
    size_t idx;

    if (j->partner == NULL || j->partner->mail == NULL || j->content == NULL)
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
    if (push_build(j->p->signer, j->p->recipient[idx], &pm, &j->msg,
                   &j->msglen, j->err, sizeof(j->err)) != 0)
        j->msg = NULL;
}

static void
send_one(struct push *p, struct queue *q, struct job *j)
{
    const struct config *cfg = p->cfg;
    const struct relay *rl;
    struct push_relay r;
    struct timespec t0, t1;
    char reply[512], err[512], note[640];
    int outcome, state, ridx, tries, done;
    int64_t next = 0, now;
    unsigned int seed = (unsigned int)(j->delivery_id * 2654435761u) ^
                        (unsigned int)time(NULL);

    clock_gettime(CLOCK_MONOTONIC, &t0);
    if (j->msg == NULL || j->partner == NULL) {
        outcome = PUSH_RETRY;
        snprintf(reply, sizeof(reply), "cannot build message: %s", j->err);
    } else {
        ridx = j->partner->mail->relay;
        rl = &cfg->relays[ridx];
        memset(&r, 0, sizeof(r));
        r.host = rl->host;
        r.port = rl->port;
        r.starttls = rl->starttls;
        r.ca = rl->ca;
        r.user = rl->auth_user;
        r.password = rl->auth_password;
        r.ehlo = cfg->mail_ehlo;
        r.timeout = cfg->mail_timeout;
        outcome = push_smtp_send(&r, cfg->mail_sender,
                                 (const char *const *)j->partner->mail->to,
                                 j->partner->mail->nto, j->msg, j->msglen,
                                 reply, sizeof(reply));
    }
    now = now_ms();
    switch (outcome) {
    case PUSH_SENT:
        state = Q_DELIVERED;
        break;
    case PUSH_FAIL:
        state = Q_DEAD;
        break;
    default:
        if (now - j->created_ms >= (int64_t)cfg->retry_max_age * 1000) {
            state = Q_DEAD;
            snprintf(note, sizeof(note), "gave up after %d attempts: %s",
                     j->attempts, reply);
            snprintf(reply, sizeof(reply), "%.*s", (int)sizeof(reply) - 1, note);
        } else {
            state = Q_DEFERRED;
            next = now + push_backoff_ms(j->attempts, cfg->retry_first,
                                         cfg->retry_factor,
                                         cfg->retry_max_delay,
                                         (double)rand_r(&seed) / ((double)RAND_MAX + 1.0));
        }
        break;
    }
    /* The outcome must be recorded: a store that is busy or full gets
     * asked again (the delivery stays sending meanwhile, and start-up
     * recovery covers a stop). */
    for (tries = 0;; tries++) {
        done = queue_mail_done(q, j->delivery_id, state, next, reply, err,
                               sizeof(err));
        if (done != Q_ERR || tries == DONE_TRIES || is_stopping(p))
            break;
        log_warn("push tracking=%s: cannot record outcome yet: %s",
                 j->tracking, err);
        wait_ms(p, IDLE_WAIT_MS);
    }
    switch (done) {
    case Q_OK:
        break;
    case Q_NOTFOUND:
        log_info("push tracking=%s: moved by the operator while sending; "
                 "outcome not recorded", j->tracking);
        break;
    default:
        /* Left sending: start-up recovery makes it due again. */
        log_error("push tracking=%s: cannot record outcome: %s",
                  j->tracking, err);
        break;
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    log_info("push partner=%s tracking=%s attempt=%d outcome=%s ms=%ld "
             "reply=\"%s\"", j->partner ? j->partner->id : "-", j->tracking,
             j->attempts, q_state_name(state),
             (long)((t1.tv_sec - t0.tv_sec) * 1000 +
                    (t1.tv_nsec - t0.tv_nsec) / 1000000), reply);
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

static void *
worker_main(void *arg)
{
    struct push *p = ((struct worker_arg *)arg)->p;
    struct queue *q = p->q[((struct worker_arg *)arg)->n];
    const struct config *cfg = p->cfg;
    const char **skip;
    char err[512];
    int64_t lease = ((int64_t)cfg->mail_timeout * 6 + 60) * 1000;

    free(arg);
    skip = calloc(cfg->npartners ? cfg->npartners : 1, sizeof(*skip));
    if (skip == NULL) {
        log_error("push: out of memory");
        return NULL;
    }
    for (;;) {
        struct job j;
        size_t i, nskip = 0;
        int rc, ridx = -1;
        int64_t next = 0;

        /* Under claim_mu: which relays are full, the claim, and taking
         * the relay slot happen as one step for all workers. */
        pthread_mutex_lock(&p->claim_mu);
        pthread_mutex_lock(&p->mu);
        if (p->stopping) {
            pthread_mutex_unlock(&p->mu);
            pthread_mutex_unlock(&p->claim_mu);
            break;
        }
        for (i = 0; i < cfg->npartners; i++) {
            const struct partner_mail *m = cfg->partners[i].mail;

            if (m != NULL && p->busy[m->relay] >= cfg->relays[m->relay].concurrency)
                skip[nskip++] = cfg->partners[i].id;
        }
        pthread_mutex_unlock(&p->mu);

        memset(&j, 0, sizeof(j));
        j.p = p;
        rc = queue_mail_claim(q, now_ms(), lease, skip, nskip, claim_cb, &j,
                              err, sizeof(err));
        if (rc == Q_OK && j.partner != NULL && j.partner->mail != NULL) {
            ridx = j.partner->mail->relay;
            pthread_mutex_lock(&p->mu);
            p->busy[ridx]++;
            pthread_mutex_unlock(&p->mu);
        }
        pthread_mutex_unlock(&p->claim_mu);
        if (rc == Q_NOTFOUND) {
            if (queue_mail_next_due(q, &next, err, sizeof(err)) != Q_OK)
                next = 0;
            next = next > 0 ? next - now_ms() : IDLE_WAIT_MS;
            if (next < 1)   /* due, but its relay is full: wait for a slot */
                next = nskip > 0 ? IDLE_WAIT_MS : 1;
            wait_ms(p, next > IDLE_WAIT_MS ? IDLE_WAIT_MS : next);
            continue;
        }
        if (rc != Q_OK) {
            log_error("push: %s", err);
            wait_ms(p, IDLE_WAIT_MS);
            continue;
        }
        push_kick(p);                  /* more may be due: wake another */
        build_message(&j);
        send_one(p, q, &j);
        if (ridx >= 0) {
            pthread_mutex_lock(&p->mu);
            p->busy[ridx]--;
            p->kicked = 1;                     /* a slot is free */
            pthread_cond_broadcast(&p->cv);
            pthread_mutex_unlock(&p->mu);
        }
        free(j.msg);
        free(j.content);
    }
    free(skip);
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
    log_info("push: %d mail workers, %zu relays", p->nthreads,
             p->cfg->nrelays);
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
