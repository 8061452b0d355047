# tests/smtp/smtp.mk - SMTP fault injection against a live ecertd.
# SPDX-License-Identifier: GPL-2.0-or-later
#
# Included by the top Makefile after B and the `all` target are defined.
#
#   make smtp-faults   tests/smtp/faults.sh: each SMTP fault played by
#                      Postfix's smtp-sink (4xx/5xx at each command,
#                      disconnects, stalls past mail.timeout, STARTTLS
#                      missing, relay down past max_age, relay AUTH,
#                      batches refused or cut off part-way);
#                      about 90 seconds.  Needs smtp-sink (Debian: postfix),
#                      openssl, sqlite3, python3 and ss.
#
# KEEP=1 keeps the temporary directory; ECERTD, ECERTCTL, SMTP_SINK and
# SAMPLES override the programs and the sample directory.

SMTP_SAVED_GOAL := $(.DEFAULT_GOAL)

.PHONY: smtp-faults

smtp-faults: all
	bash tests/smtp/faults.sh

.DEFAULT_GOAL := $(SMTP_SAVED_GOAL)
