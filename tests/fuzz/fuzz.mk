# tests/fuzz/fuzz.mk - libFuzzer harnesses (clang, ASan + UBSan).
# SPDX-License-Identifier: GPL-2.0-or-later
#
# Included by the top Makefile after B, GEN, XCFLAGS, LDLIBS, WARN,
# QUEUE_SRC, CONFIG_SRC and GW_COMMON are defined.  The project's sources
# are compiled again with clang and the sanitizers into $(B)/fuzz/obj/,
# apart from the gcc objects in $(B)/obj/.
#
#   make fuzz-build     build $(B)/fuzz/fuzz_{soap,sps,config,mime}
#   make fuzz-short     each harness FUZZ_SECONDS (default 60) seconds
#   make fuzz           each harness FUZZ_SECONDS (default 600) seconds
#   make fuzz-regress   each harness once over tests/fuzz/regress/<name>/
#                       and its seeds, without fuzzing
#
# Each run prints "fuzz <name>: <execs> execs in <s> s, <n> crashes".
# An input that once crashed goes, minimised, into
# tests/fuzz/regress/<name>/ (any file name, no dot files there).
# Reproduce one: build/fuzz/fuzz_<name> FILE (LSAN_OPTIONS=
# suppressions=tests/fuzz/lsan.supp); FUZZ_SOAP_ECHO=1 shows the SOAP
# answers, FUZZ_CONFIG_ECHO=1 the configuration errors.
#
# FUZZ_NAMES=sps make fuzz-short runs a subset.  Corpora grow in
# $(B)/fuzz/corpus-<name> (seeded from tests/fuzz/corpus/<name> and the
# seeds tests/fuzz/make-seeds.sh makes in $(B)/fuzz/seeds/<name>); crash
# inputs land in $(B)/fuzz/crashes/, logs in $(B)/fuzz/log-<name>.txt.
# Any crash, leak or sanitizer report makes the target fail.  Needs
# clang and libFuzzer (Debian: clang, libclang-rt-14-dev).

FUZZ_SAVED_GOAL := $(.DEFAULT_GOAL)

FUZZ_CC      ?= clang
FUZZ_DIR     := $(B)/fuzz
FUZZ_OBJDIR  := $(FUZZ_DIR)/obj
FUZZ_NAMES   ?= soap sps config mime
FUZZ_CFLAGS  ?= -O1 -g -fno-omit-frame-pointer
FUZZ_SAN     := -fsanitize=address,undefined -fno-sanitize-recover=undefined
FUZZ_CPPFLAGS := $(XCFLAGS) -I$(GEN) -Itests/fuzz -DFUZZ_SRCDIR='"$(CURDIR)"'

fuzz_obj = $(patsubst %.c,$(FUZZ_OBJDIR)/%.o,$(1))

FUZZ_PUSH_SRC := $(filter gateway/push%,$(wildcard gateway/*.c))
FUZZ_COMMON   := $(call fuzz_obj,tests/fuzz/fuzz_common.c)
FUZZ_GEN_OBJ  := $(FUZZ_OBJDIR)/gen/soapC.o $(FUZZ_OBJDIR)/gen/soapServer.o

FUZZ_SOAP_OBJ   := $(call fuzz_obj,tests/fuzz/fuzz_soap.c gateway/hub_ops.c gateway/server_serve.c \
                     $(QUEUE_SRC) $(CONFIG_SRC) $(GW_COMMON) $(FUZZ_PUSH_SRC)) \
                   $(FUZZ_GEN_OBJ) $(FUZZ_COMMON)
FUZZ_SPS_OBJ    := $(call fuzz_obj,tests/fuzz/fuzz_sps.c $(GW_COMMON)) $(FUZZ_COMMON)
FUZZ_CONFIG_OBJ := $(call fuzz_obj,tests/fuzz/fuzz_config.c $(CONFIG_SRC)) $(FUZZ_COMMON)
FUZZ_MIME_OBJ   := $(call fuzz_obj,tests/fuzz/fuzz_mime.c gateway/push_mime.c) $(FUZZ_COMMON)

FUZZ_BINS := $(patsubst %,$(FUZZ_DIR)/fuzz_%,$(FUZZ_NAMES))

.PHONY: fuzz-build fuzz-seeds fuzz-short fuzz fuzz-regress

$(FUZZ_OBJDIR)/gen/%.o: $(GEN)/%.c $(GEN)/soapStub.h
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) $(FUZZ_SAN) -fsanitize=fuzzer-no-link $(FUZZ_CPPFLAGS) -w -c -o $@ $<

$(FUZZ_OBJDIR)/%.o: %.c $(GEN)/soapStub.h
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) $(FUZZ_SAN) -fsanitize=fuzzer-no-link $(FUZZ_CPPFLAGS) $(WARN) -MMD -MP -c -o $@ $<

-include $(shell find $(FUZZ_OBJDIR) -name '*.d' 2>/dev/null)

FUZZ_LINK = $(FUZZ_CC) $(FUZZ_CFLAGS) $(FUZZ_SAN) -fsanitize=fuzzer -o $@ $^

$(FUZZ_DIR)/fuzz_soap: $(FUZZ_SOAP_OBJ)
	$(FUZZ_LINK) -lgsoapssl $(LDLIBS) -lesmtp -lm
$(FUZZ_DIR)/fuzz_sps: $(FUZZ_SPS_OBJ)
	$(FUZZ_LINK) $(LDLIBS) -lm
$(FUZZ_DIR)/fuzz_config: $(FUZZ_CONFIG_OBJ)
	$(FUZZ_LINK) $(LDLIBS) -lm
$(FUZZ_DIR)/fuzz_mime: $(FUZZ_MIME_OBJ)
	$(FUZZ_LINK) $(LDLIBS) -lm

fuzz-build: $(FUZZ_BINS)

# Seeds made from files outside the repository (the shared samples) and
# from config/ecertd.example.conf; remade when the script changes.
$(FUZZ_DIR)/seeds/.stamp: tests/fuzz/make-seeds.sh config/ecertd.example.conf
	bash tests/fuzz/make-seeds.sh $(FUZZ_DIR)/seeds
	@touch $@
fuzz-seeds: $(FUZZ_DIR)/seeds/.stamp

# All harnesses at once (each for FUZZ_SECONDS of wall time), so the
# short form costs one minute of `make check`.
fuzz-short: fuzz-build fuzz-seeds
	@pids=""; for n in $(FUZZ_NAMES); do \
	  FUZZ_DIR=$(FUZZ_DIR) bash tests/fuzz/run.sh fuzz $$n $(or $(FUZZ_SECONDS),60) & \
	  pids="$$pids $$!"; \
	done; fail=0; for p in $$pids; do wait $$p || fail=1; done; exit $$fail

fuzz: fuzz-build fuzz-seeds
	@pids=""; for n in $(FUZZ_NAMES); do \
	  FUZZ_DIR=$(FUZZ_DIR) bash tests/fuzz/run.sh fuzz $$n $(or $(FUZZ_SECONDS),600) & \
	  pids="$$pids $$!"; \
	done; fail=0; for p in $$pids; do wait $$p || fail=1; done; exit $$fail

fuzz-regress: fuzz-build fuzz-seeds
	@fail=0; for n in $(FUZZ_NAMES); do \
	  FUZZ_DIR=$(FUZZ_DIR) bash tests/fuzz/run.sh regress $$n || fail=1; \
	done; exit $$fail

.DEFAULT_GOAL := $(if $(FUZZ_SAVED_GOAL),$(FUZZ_SAVED_GOAL),all)
