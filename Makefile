# ecert-gateway - plain Makefile.
# SPDX-License-Identifier: GPL-2.0-or-later
#
#   make deps     install the Debian packages needed to build, test and run
#   make          build/ecertd and build/ecertctl
#   make run      deps + build + dev CA + start ecertd -f on the example config
#   make check    deps + build + the whole test suite
#   make install  PREFIX=/usr/local DESTDIR=

CC       ?= gcc
PREFIX   ?= /usr/local
B        := build
GEN      := $(B)/gen
GENHUB   := $(B)/gen-hub
GSOAPIMP := /usr/share/gsoap/import

WARN     := -Wall -Wextra -Wformat=2 -Wshadow -Wstrict-prototypes -Wmissing-prototypes
CFLAGS   ?= -O2 -g
XCFLAGS  := -std=c17 -D_GNU_SOURCE -DWITH_OPENSSL -DWITH_DOM -I. -Iqueue -Iconfig -Igateway \
            $(shell xml2-config --cflags 2>/dev/null)
GSOAPLIB := -lgsoapssl
LDLIBS   := -lssl -lcrypto $(shell xml2-config --libs 2>/dev/null) -lsqlite3 -lconfig \
            -ljansson -lz -lpthread

DEB_PKGS := build-essential valgrind clang libclang-rt-14-dev strace iproute2 e2fsprogs \
            nginx-light gsoap libgsoap-dev libssl-dev openssl libxml2-dev libxml2-utils \
            libcurl4-openssl-dev curl libesmtp-dev libsqlite3-dev sqlite3 libconfig-dev \
            libjansson-dev libcmocka-dev postfix zlib1g-dev

# Sources: queue/ and config/ are libraries; gateway/ holds the daemon's
# parts (server_*, hub_*), the operator CLI and the parts both use.
QUEUE_SRC  := $(wildcard queue/*.c)
CONFIG_SRC := $(wildcard config/*.c)
GW_ALL     := $(wildcard gateway/*.c)
GW_MAINS   := gateway/ecertd.c gateway/ecertctl.c
GW_DAEMON  := $(filter gateway/server_% gateway/hub_% gateway/push%,$(GW_ALL))
GW_COMMON  := $(filter-out $(GW_MAINS) $(GW_DAEMON),$(GW_ALL))

obj = $(patsubst %.c,$(B)/obj/%.o,$(1))
CORE_OBJ   := $(call obj,$(QUEUE_SRC) $(CONFIG_SRC) $(GW_COMMON))
PUSH_OBJ   := $(call obj,$(filter gateway/push%,$(GW_ALL)))
DAEMON_OBJ := $(call obj,$(GW_DAEMON) gateway/ecertd.c) $(B)/obj/gen/soapC.o $(B)/obj/gen/soapServer.o
CTL_OBJ    := $(call obj,gateway/ecertctl.c)

UNIT_SRC   := $(wildcard tests/unit/test_*.c)
UNIT_BIN   := $(patsubst tests/unit/%.c,$(B)/tests/%,$(UNIT_SRC))

.PHONY: all deps run check unit unit-valgrind integration integration-asan asan clean install gen
all: $(B)/ecertd $(B)/ecertctl

# ---- Debian packages -------------------------------------------------------
deps:
	@missing=""; for p in $(DEB_PKGS); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'install ok installed' || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  export DEBIAN_FRONTEND=noninteractive; \
	  apt-get update -qq && apt-get install -y -qq --no-install-recommends $$missing; \
	else echo "deps: all Debian packages present"; fi

# ---- generated SOAP code (never committed) ---------------------------------
$(GEN)/ecert.h: wsdl/DeliveryService.wsdl wsdl/typemap.dat
	@mkdir -p $(GEN)
	wsdl2h -c -x -t wsdl/typemap.dat -o $@ wsdl/DeliveryService.wsdl
$(GEN)/soapStub.h $(GEN)/soapC.c $(GEN)/soapServer.c: $(GEN)/ecert.h
	soapcpp2 -c -S -L -x -w -I$(GSOAPIMP) -d $(GEN) $(GEN)/ecert.h
gen: $(GEN)/soapStub.h

$(B)/obj/gen/%.o: $(GEN)/%.c $(GEN)/soapStub.h
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(XCFLAGS) -I$(GEN) -w -c -o $@ $<

$(B)/obj/%.o: %.c $(GEN)/soapStub.h
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(XCFLAGS) $(WARN) -I$(GEN) -MMD -MP -c -o $@ $<

-include $(shell find $(B)/obj -name '*.d' 2>/dev/null)

$(B)/ecertd: $(DAEMON_OBJ) $(CORE_OBJ)
	$(CC) $(CFLAGS) -o $@ $^ $(GSOAPLIB) $(LDLIBS) -lesmtp -lm
$(B)/ecertctl: $(CTL_OBJ) $(CORE_OBJ)
	$(CC) $(CFLAGS) -o $@ $^ $(LDLIBS)

# ---- tests -----------------------------------------------------------------
$(B)/tests/%: tests/unit/%.c $(CORE_OBJ) $(PUSH_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(XCFLAGS) -I$(GEN) -o $@ $^ $(LDLIBS) -lesmtp -lm -lcmocka

unit: $(UNIT_BIN)
	@fail=0; for t in $(UNIT_BIN); do echo "== $$t"; $$t || fail=1; done; exit $$fail

# The client generated from the ePhyto Hub's own WSDL (wire compatibility).
$(GENHUB)/hub.h: ../shared/schemas/ephyto-hub/ephyto-hub-DeliveryService-prod.wsdl
	@mkdir -p $(GENHUB)
	wsdl2h -c -x -o $@ $<
$(GENHUB)/soapClient.c: $(GENHUB)/hub.h
	soapcpp2 -c -C -L -x -w -I$(GSOAPIMP) -d $(GENHUB) $<
$(B)/hubclient: tests/integration/hubclient.c $(GENHUB)/soapClient.c
	$(CC) $(CFLAGS) -std=c17 -D_GNU_SOURCE -DWITH_OPENSSL -I$(GENHUB) -w -o $@ \
	  tests/integration/hubclient.c $(GENHUB)/soapC.c $(GENHUB)/soapClient.c -lgsoapssl -lssl -lcrypto -lz

integration: all $(B)/hubclient
	bash tests/integration/run.sh
	bash tests/integration/mail.sh

# Unit tests under valgrind: any error or leak fails.
unit-valgrind: $(UNIT_BIN)
	@fail=0; for t in $(UNIT_BIN); do echo "== valgrind $$t"; \
	  valgrind -q --leak-check=full --errors-for-leak-kinds=definite,indirect \
	    --error-exitcode=99 $$t >$$t.valgrind.log 2>&1 || { fail=1; tail -30 $$t.valgrind.log; }; \
	done; exit $$fail

# ---- sanitizers -------------------------------------------------------------
# The same sources built with AddressSanitizer + UndefinedBehaviorSanitizer
# into build/asan/, and the integration suite run against them; any
# sanitizer report (written under build/asan/reports/) fails the run.
ASAN_CFLAGS := -O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer \
               -fno-sanitize-recover=undefined
ASAN_DIR    := $(B)/asan
asan:
	$(MAKE) B=$(ASAN_DIR) CFLAGS="$(ASAN_CFLAGS)" $(ASAN_DIR)/ecertd $(ASAN_DIR)/ecertctl

integration-asan: asan $(B)/hubclient
	rm -rf $(ASAN_DIR)/reports && mkdir -p $(ASAN_DIR)/reports
	ECERTD=$(CURDIR)/$(ASAN_DIR)/ecertd ECERTCTL=$(CURDIR)/$(ASAN_DIR)/ecertctl \
	ASAN_OPTIONS=detect_leaks=1:halt_on_error=1:log_path=$(CURDIR)/$(ASAN_DIR)/reports/asan \
	LSAN_OPTIONS=suppressions=$(CURDIR)/tests/lsan.supp \
	UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1:log_path=$(CURDIR)/$(ASAN_DIR)/reports/ubsan \
	bash tests/integration/run.sh
	@if ls $(ASAN_DIR)/reports/* >/dev/null 2>&1; then \
	  echo "sanitizer reports:"; cat $(ASAN_DIR)/reports/*; exit 1; \
	else echo "sanitizers: no reports"; fi

# The whole suite, short forms (long forms: make soak, make fuzz, make bench).
check: deps
	$(MAKE) all
	$(MAKE) unit
	$(MAKE) unit-valgrind
	$(MAKE) integration
	$(MAKE) integration-asan
	$(MAKE) security
	$(MAKE) soak-short
	$(MAKE) smtp-faults
	$(MAKE) fuzz-regress
	$(MAKE) fuzz-short
	@echo "make check: all suites passed"

# ---- run ------------------------------------------------------------------
run: deps
	$(MAKE) all
	bash deploy/run-dev.sh

-include tests/fuzz/fuzz.mk tests/bench/bench.mk tests/soak/soak.mk tests/security/security.mk tests/smtp/smtp.mk

install: all
	install -d $(DESTDIR)$(PREFIX)/sbin $(DESTDIR)$(PREFIX)/share/ecert-gateway
	install -m 0755 $(B)/ecertd $(B)/ecertctl $(DESTDIR)$(PREFIX)/sbin/
	cp -r wsdl/. $(DESTDIR)$(PREFIX)/share/ecert-gateway/
	install -D -m 0644 deploy/ecertd.service $(DESTDIR)/lib/systemd/system/ecertd.service

clean:
	rm -rf $(B)
