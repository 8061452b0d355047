/*
 * log.h - one line per event, key=value, to stderr (foreground) or syslog.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * Never log certificate content, keys or other secrets: callers pass
 * identifiers, states and error texts only.
 */
#ifndef ECERT_LOG_H
#define ECERT_LOG_H

enum { LOG_TO_STDERR = 0, LOG_TO_SYSLOG = 1, LOG_TO_NONE = 2 };

void log_open(const char *ident, int where);
void log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
