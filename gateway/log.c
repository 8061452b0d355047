/*
 * log.c - minimal line logger shared by the daemon's threads.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */
#include <stdarg.h>
#include <stdio.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

static const char *log_ident = "ecertd";
static int log_where = LOG_TO_STDERR;
static long log_pid;                 /* ours; set by log_open */

void
log_open(const char *ident, int where)
{
    log_ident = ident;
    log_where = where;
    log_pid = (long)getpid();
    if (where == LOG_TO_SYSLOG)
        openlog(ident, LOG_PID | LOG_NDELAY, LOG_DAEMON);
}

static void log_v(int prio, const char *level, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));

static void
log_v(int prio, const char *level, const char *fmt, va_list ap)
{
    char line[2048], out[2200];
    char stamp[32];
    int n;
    struct timespec ts;
    struct tm tm;

    if (log_where == LOG_TO_NONE)
        return;
    vsnprintf(line, sizeof(line), fmt, ap);
    if (log_where == LOG_TO_SYSLOG) {
        syslog(prio, "%s%s", level, line);
        return;
    }
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &tm);
    /* One write(2) per line: lines stay whole without a stream lock
     * that every worker would queue on. */
    n = snprintf(out, sizeof(out), "%s.%03ldZ %s[%ld]: %s%s\n", stamp,
                 ts.tv_nsec / 1000000, log_ident,
                 log_pid != 0 ? log_pid : (long)getpid(), level, line);
    if (n < 0)
        return;
    if ((size_t)n >= sizeof(out)) {          /* cut long: keep the newline */
        n = (int)sizeof(out) - 1;
        out[n - 1] = '\n';
    }
    (void)!write(STDERR_FILENO, out, (size_t)n);
}

void
log_info(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    log_v(LOG_INFO, "", fmt, ap);
    va_end(ap);
}

void
log_warn(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    log_v(LOG_WARNING, "warning: ", fmt, ap);
    va_end(ap);
}

void
log_error(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    log_v(LOG_ERR, "error: ", fmt, ap);
    va_end(ap);
}
