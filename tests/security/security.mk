# tests/security/security.mk - the security suite against a live ecertd.
# SPDX-License-Identifier: GPL-2.0-or-later
#
# Included by the top Makefile after B is defined.
#
#   make security    tests/security/authz.sh (authorization matrix, writes
#                    tests/security/authz-table.md) and
#                    tests/security/hostile.sh (hostile input, floods);
#                    about 3 minutes.  Needs strace (Debian: strace).
#
# KEEP=1 keeps the temporary directories; STORM_SECONDS (default 20) sets
# how long each connection flood of hostile.sh lasts.

SECURITY_SAVED_GOAL := $(.DEFAULT_GOAL)

SECURITY_CLIENT := $(B)/security/hostile_client

.PHONY: security security-authz security-hostile

$(SECURITY_CLIENT): tests/security/hostile_client.c
	@mkdir -p $(dir $@)
	$(CC) -O2 -g -std=c17 -D_GNU_SOURCE -Wall -Wextra -o $@ $< -lssl -lcrypto

security-authz: $(B)/ecertd $(B)/ecertctl $(B)/hubclient
	bash tests/security/authz.sh

security-hostile: $(B)/ecertd $(B)/ecertctl $(B)/hubclient $(SECURITY_CLIENT)
	@command -v strace >/dev/null || { export DEBIAN_FRONTEND=noninteractive; \
	  apt-get update -qq && apt-get install -y -qq --no-install-recommends strace; }
	HOSTILE_CLIENT=$(CURDIR)/$(SECURITY_CLIENT) bash tests/security/hostile.sh

# Both run even when the first fails; the target fails if either did.
security: $(B)/ecertd $(B)/ecertctl $(B)/hubclient $(SECURITY_CLIENT)
	@command -v strace >/dev/null || { export DEBIAN_FRONTEND=noninteractive; \
	  apt-get update -qq && apt-get install -y -qq --no-install-recommends strace; }
	@rc=0; bash tests/security/authz.sh || rc=1; \
	HOSTILE_CLIENT=$(CURDIR)/$(SECURITY_CLIENT) bash tests/security/hostile.sh || rc=1; \
	exit $$rc

.DEFAULT_GOAL := $(SECURITY_SAVED_GOAL)
