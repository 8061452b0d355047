/*
 * test_push.c - retry policy of the mail push workers, and the outcome of
 * each message of one SMTP session against a scripted relay.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "config.h"
#include "push.h"

static void
test_backoff_grows_and_caps(void **state)
{
    (void)state;
    /* rnd 0.5 = no jitter: first * factor^(n-1), capped. */
    assert_int_equal(push_backoff_ms(1, 60, 2.0, 3600, 0.5), 60000);
    assert_int_equal(push_backoff_ms(2, 60, 2.0, 3600, 0.5), 120000);
    assert_int_equal(push_backoff_ms(3, 60, 2.0, 3600, 0.5), 240000);
    assert_int_equal(push_backoff_ms(6, 60, 2.0, 3600, 0.5), 1920000);
    assert_int_equal(push_backoff_ms(7, 60, 2.0, 3600, 0.5), 3600000);
    assert_int_equal(push_backoff_ms(40, 60, 2.0, 3600, 0.5), 3600000);
    assert_int_equal(push_backoff_ms(3, 10, 1.5, 3600, 0.5), 22500);
    assert_int_equal(push_backoff_ms(1000, 1, 10.0, 604800, 0.5), 604800000);
}

static void
test_backoff_jitter_bounds(void **state)
{
    (void)state;
    /* +-10% around the nominal delay, never outside it. */
    assert_int_equal(push_backoff_ms(1, 100, 2.0, 3600, 0.0), 90000);
    assert_true(push_backoff_ms(1, 100, 2.0, 3600, 0.999999) <= 110000);
    assert_true(push_backoff_ms(1, 100, 2.0, 3600, 0.999999) > 109990);
    assert_int_equal(push_backoff_ms(30, 100, 2.0, 1000, 0.0), 900000);
}

static void
test_backoff_first_attempt_numbers(void **state)
{
    (void)state;
    /* attempts < 1 are treated as the first attempt. */
    assert_int_equal(push_backoff_ms(0, 5, 3.0, 3600, 0.5), 5000);
    assert_int_equal(push_backoff_ms(-3, 5, 3.0, 3600, 0.5), 5000);
}

/* ---- one SMTP session for a batch (push_smtp_send_batch) ------------------ *
 * A scripted relay on 127.0.0.1 in a thread of its own: it offers
 * PIPELINING, answers each message's MAIL, RCPT, DATA and "." as the
 * script says, and may hang up at a given point. */

#define FAKE_MAX 8

struct fake_step {
    const char *mail, *rcpt, *data, *dot;   /* NULL: a 2xx/354 */
    int drop_at_dot;                        /* hang up instead of answering
                                               its "." */
    int drop_at_mail;                       /* hang up instead of answering
                                               its MAIL */
};

struct fake_relay {
    int lfd;
    int port;
    const char *greeting;                   /* NULL: 220 */
    struct fake_step step[FAKE_MAX];
    /* what it saw */
    int sessions, transactions;
    int seq[FAKE_MAX];                      /* X-Seq of each message taken */
    char buf[8192];
    size_t have;
};

static int
fake_line(struct fake_relay *r, int fd, char *line, size_t len)
{
    char *nl;
    ssize_t got;
    size_t n;

    for (;;) {
        nl = memchr(r->buf, '\n', r->have);
        if (nl != NULL) {
            n = (size_t)(nl - r->buf) + 1;
            if (n >= len)
                n = len - 1;
            memcpy(line, r->buf, n);
            line[n] = '\0';
            r->have -= (size_t)(nl - r->buf) + 1;
            memmove(r->buf, nl + 1, r->have);
            return 0;
        }
        if (r->have == sizeof(r->buf))
            return -1;
        got = read(fd, r->buf + r->have, sizeof(r->buf) - r->have);
        if (got <= 0)
            return -1;
        r->have += (size_t)got;
    }
}

static void
fake_say(int fd, const char *what)
{
    size_t len = strlen(what);

    assert_true(write(fd, what, len) == (ssize_t)len);
    assert_true(write(fd, "\r\n", 2) == 2);
}

/* One session; returns when the client quits or the script hangs up.
 * Like a real relay, a refused MAIL or DATA ends that message's
 * transaction, and RCPT or DATA outside one is a 503. */
static void
fake_session(struct fake_relay *r, int fd)
{
    char line[1024];
    int msg = 0, in_tx = 0, rcpt_ok = 0, seq;

    r->have = 0;
    r->sessions++;
    fake_say(fd, r->greeting ? r->greeting : "220 fake ESMTP");
    if (r->greeting != NULL && r->greeting[0] != '2')
        return;
    while (fake_line(r, fd, line, sizeof(line)) == 0) {
        const struct fake_step *s = &r->step[msg < FAKE_MAX ? msg : 0];

        if (strncasecmp(line, "EHLO", 4) == 0) {
            fake_say(fd, "250-fake\r\n250 PIPELINING");
        } else if (strncasecmp(line, "MAIL", 4) == 0) {
            if (s->drop_at_mail)
                return;
            fake_say(fd, s->mail ? s->mail : "250 2.1.0 Ok");
            rcpt_ok = 0;
            in_tx = s->mail == NULL;
            if (!in_tx)
                msg++;
        } else if (strncasecmp(line, "RCPT", 4) == 0) {
            if (!in_tx) {
                fake_say(fd, "503 5.5.1 need MAIL");
                continue;
            }
            rcpt_ok = s->rcpt == NULL;
            fake_say(fd, s->rcpt ? s->rcpt : "250 2.1.5 Ok");
        } else if (strncasecmp(line, "DATA", 4) == 0) {
            if (!in_tx) {
                fake_say(fd, "503 5.5.1 need MAIL");
                continue;
            }
            if (!rcpt_ok || s->data != NULL) {
                fake_say(fd, s->data ? s->data : "554 5.5.1 no recipients");
                in_tx = 0;
                msg++;
                continue;
            }
            fake_say(fd, "354 go ahead");
            seq = -1;
            while (fake_line(r, fd, line, sizeof(line)) == 0 &&
                   strcmp(line, ".\r\n") != 0)
                if (strncmp(line, "X-Seq: ", 7) == 0)
                    seq = atoi(line + 7);
            if (s->drop_at_dot)
                return;
            if (s->dot == NULL && r->transactions < FAKE_MAX)
                r->seq[r->transactions++] = seq;
            fake_say(fd, s->dot ? s->dot : "250 2.0.0 Ok: queued");
            in_tx = 0;
            msg++;
        } else if (strncasecmp(line, "RSET", 4) == 0) {
            in_tx = 0;
            fake_say(fd, "250 2.0.0 Ok");
        } else if (strncasecmp(line, "QUIT", 4) == 0) {
            fake_say(fd, "221 2.0.0 Bye");
            return;
        } else {
            fake_say(fd, "502 5.5.2 what?");
        }
    }
}

static void *
fake_run(void *arg)
{
    struct fake_relay *r = arg;
    int fd;

    /* sessions until the listener is shut down */
    while ((fd = accept(r->lfd, NULL, NULL)) >= 0) {
        fake_session(r, fd);
        close(fd);
    }
    return NULL;
}

static void
fake_start(struct fake_relay *r, pthread_t *th)
{
    struct sockaddr_in sa;
    socklen_t len = sizeof(sa);
    int one = 1;

    r->lfd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(r->lfd >= 0);
    setsockopt(r->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(r->lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(listen(r->lfd, 4), 0);
    assert_int_equal(getsockname(r->lfd, (struct sockaddr *)&sa, &len), 0);
    r->port = ntohs(sa.sin_port);
    assert_int_equal(pthread_create(th, NULL, fake_run, r), 0);
}

static void
fake_stop(struct fake_relay *r, pthread_t th)
{
    shutdown(r->lfd, SHUT_RDWR);
    assert_int_equal(pthread_join(th, NULL), 0);
    close(r->lfd);
}

static const char *const rcpt_to[] = { "nppo@ec.invalid" };

/* n messages "X-Seq: 0".. through the relay on port; outcomes in m */
static size_t
send_batch(int port, struct push_mail *m, size_t n, char (*body)[128])
{
    struct push_relay relay;
    size_t i;

    memset(&relay, 0, sizeof(relay));
    relay.host = "127.0.0.1";
    relay.port = port;
    relay.starttls = CFG_STARTTLS_OFF;
    relay.ehlo = "gw.invalid";
    relay.timeout = 5;
    memset(m, 0, n * sizeof(*m));
    for (i = 0; i < n; i++) {
        snprintf(body[i], 128, "Subject: test\r\nX-Seq: %zu\r\n\r\n"
                 ".a line that needs dot-stuffing\r\nend\r\n", i);
        m[i].to = rcpt_to;
        m[i].nto = 1;
        m[i].msg = body[i];
        m[i].msglen = strlen(body[i]);
        m[i].outcome = -1;
    }
    return push_smtp_send_batch(&relay, "ecert@gw.invalid", m, n);
}

static void
test_session_all_sent(void **state)
{
    struct fake_relay *r = calloc(1, sizeof(*r));
    struct push_mail m[4];
    char body[4][128];
    pthread_t th;
    size_t i;

    (void)state;
    assert_non_null(r);
    fake_start(r, &th);
    assert_int_equal(send_batch(r->port, m, 4, body), 4);
    fake_stop(r, th);
    /* one session carried all four, in order */
    assert_int_equal(r->sessions, 1);
    assert_int_equal(r->transactions, 4);
    for (i = 0; i < 4; i++) {
        assert_int_equal(r->seq[i], (int)i);
        assert_int_equal(m[i].outcome, PUSH_SENT);
        assert_string_equal(m[i].reply, "DATA: 250 2.0.0 Ok: queued");
    }
    free(r);
}

static void
test_session_mixed_replies(void **state)
{
    struct fake_relay *r = calloc(1, sizeof(*r));
    struct push_mail m[7];
    char body[7][128];
    pthread_t th;

    (void)state;
    assert_non_null(r);
    r->step[1].dot = "451 4.3.0 dot later";
    r->step[2].dot = "554 5.6.0 content refused";
    r->step[3].rcpt = "550 5.1.1 no such mailbox";
    r->step[4].mail = "451 4.3.0 sender later";
    r->step[5].data = "452 4.3.1 no room";
    fake_start(r, &th);
    assert_int_equal(send_batch(r->port, m, 7, body), 2);
    fake_stop(r, th);
    /* one session; each message judged by its own replies */
    assert_int_equal(r->sessions, 1);
    assert_int_equal(r->transactions, 2);
    assert_int_equal(r->seq[0], 0);
    assert_int_equal(r->seq[1], 6);
    assert_int_equal(m[0].outcome, PUSH_SENT);
    assert_int_equal(m[1].outcome, PUSH_RETRY);
    assert_string_equal(m[1].reply, "DATA: 451 4.3.0 dot later");
    assert_int_equal(m[2].outcome, PUSH_FAIL);
    assert_string_equal(m[2].reply, "DATA: 554 5.6.0 content refused");
    assert_int_equal(m[3].outcome, PUSH_FAIL);
    assert_string_equal(m[3].reply, "RCPT TO: 550 5.1.1 no such mailbox");
    assert_int_equal(m[4].outcome, PUSH_RETRY);
    assert_string_equal(m[4].reply, "MAIL FROM: 451 4.3.0 sender later");
    assert_int_equal(m[5].outcome, PUSH_RETRY);
    assert_string_equal(m[5].reply, "DATA: 452 4.3.1 no room");
    assert_int_equal(m[6].outcome, PUSH_SENT);
    free(r);
}

static void
test_session_lost_midway(void **state)
{
    struct fake_relay *r = calloc(1, sizeof(*r));
    struct push_mail m[5];
    char body[5][128];
    pthread_t th;

    (void)state;
    assert_non_null(r);
    /* the third message's text arrives, then the relay hangs up without
     * answering its "." */
    r->step[2].drop_at_dot = 1;
    fake_start(r, &th);
    assert_int_equal(send_batch(r->port, m, 5, body), 2);
    /* accepted ones stay sent; the one in progress and the rest retry */
    assert_int_equal(m[0].outcome, PUSH_SENT);
    assert_int_equal(m[1].outcome, PUSH_SENT);
    assert_int_equal(m[2].outcome, PUSH_RETRY);
    assert_non_null(strstr(m[2].reply, "no reply"));
    assert_int_equal(m[3].outcome, PUSH_RETRY);
    assert_non_null(strstr(m[3].reply, "no reply to MAIL FROM"));
    assert_int_equal(m[4].outcome, PUSH_RETRY);

    /* hanging up at a MAIL: the messages before it are sent */
    memset(r->step, 0, sizeof(r->step));
    r->step[1].drop_at_mail = 1;
    r->transactions = 0;
    assert_int_equal(send_batch(r->port, m, 3, body), 1);
    fake_stop(r, th);
    assert_int_equal(r->sessions, 2);
    assert_int_equal(r->transactions, 1);
    assert_int_equal(m[0].outcome, PUSH_SENT);
    assert_int_equal(m[1].outcome, PUSH_RETRY);
    assert_int_equal(m[2].outcome, PUSH_RETRY);
    free(r);
}

static void
test_session_refused(void **state)
{
    struct fake_relay *r = calloc(1, sizeof(*r));
    struct push_mail m[3];
    char body[3][128], want[64];
    pthread_t th;
    int port, i;

    (void)state;
    assert_non_null(r);
    /* 421 to the greeting: nothing sent, all retried with the reply */
    r->greeting = "421 4.3.2 fake busy";
    fake_start(r, &th);
    assert_int_equal(send_batch(r->port, m, 3, body), 0);
    fake_stop(r, th);
    port = r->port;
    snprintf(want, sizeof(want), "127.0.0.1:%d: 421 4.3.2 fake busy", port);
    for (i = 0; i < 3; i++) {
        assert_int_equal(m[i].outcome, PUSH_RETRY);
        assert_string_equal(m[i].reply, want);
    }
    /* nobody listens any more: refused, all retried */
    assert_int_equal(send_batch(port, m, 3, body), 0);
    for (i = 0; i < 3; i++) {
        assert_int_equal(m[i].outcome, PUSH_RETRY);
        assert_true(strncmp(m[i].reply, want, strlen("127.0.0.1:")) == 0);
    }
    free(r);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_backoff_grows_and_caps),
        cmocka_unit_test(test_backoff_jitter_bounds),
        cmocka_unit_test(test_backoff_first_attempt_numbers),
        cmocka_unit_test(test_session_all_sent),
        cmocka_unit_test(test_session_mixed_replies),
        cmocka_unit_test(test_session_lost_midway),
        cmocka_unit_test(test_session_refused),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
