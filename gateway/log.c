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

void
log_open(const char *ident, int where)
{
    log_ident = ident;
    log_where = where;
    if (where == LOG_TO_SYSLOG)
        openlog(ident, LOG_PID | LOG_NDELAY, LOG_DAEMON);
}

static void log_v(int prio, const char *level, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));

static void
log_v(int prio, const char *level, const char *fmt, va_list ap)
{
    char line[2048];
    char stamp[32];
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
    /* One fprintf per line: stdio locks the stream, lines stay whole. */
    fprintf(stderr, "%s.%03ldZ %s[%ld]: %s%s\n", stamp, ts.tv_nsec / 1000000,
            log_ident, (long)getpid(), level, line);
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
