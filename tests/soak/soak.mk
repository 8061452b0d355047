# SPDX-License-Identifier: GPL-2.0-or-later
#
# soak.mk - crash and disk-full soak tests; included by the top Makefile
# after its variables (B) and the `all` and $(B)/hubclient targets.
#
#   make soak-short   crash.sh with 20 SIGKILLs + diskfull.sh (a few
#                     minutes; part of `make check`)
#   make soak         crash.sh with 200 SIGKILLs + diskfull.sh (long form)
#
# diskfull.sh mounts a small tmpfs (or a loop ext4 image) and so needs root;
# without root it reports a skip.  Both run against $(B)/ecertd unless
# ECERTD is set; KEEP=1 keeps their temporary directories.

SOAK_KILLS_SHORT ?= 20
SOAK_KILLS       ?= 200

.PHONY: soak soak-short

soak-short: all $(B)/hubclient
	@rc=0; \
	KILLS=$(SOAK_KILLS_SHORT) bash tests/soak/crash.sh || rc=1; \
	bash tests/soak/diskfull.sh || rc=1; \
	exit $$rc

soak: all $(B)/hubclient
	@rc=0; \
	KILLS=$(SOAK_KILLS) bash tests/soak/crash.sh || rc=1; \
	bash tests/soak/diskfull.sh || rc=1; \
	exit $$rc
