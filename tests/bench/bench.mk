# SPDX-License-Identifier: GPL-2.0-or-later
#
# bench.mk - benchmarks; included by the top Makefile after its variables
# (B, CFLAGS, XCFLAGS, WARN, LDLIBS, QUEUE_SRC) are defined.  Never part of
# `make check`.
#
#   make bench                 pull / hand-in / push / memory / latency /
#                              10 k store figures, each against a reference
#                              run on this machine (< 20 min); the table goes
#                              to tests/bench/results/latest.md
#   make bench-scale           the store at SCALE_N certificates (default
#                              10 000 000) against 10 000: pull p99,
#                              `ecertctl status` time, size, peak RSS
#   make bench-tools           just build the tools below
#
# Debian packages beyond the build's: nginx-light (reference HTTPS server),
# linux-perf (profiles; optional), postfix (smtp-sink, smtp-source),
# libcurl4-openssl-dev, sqlite3.

BENCH_BIN   := $(B)/bench
BENCH_TOOLS := $(BENCH_BIN)/loadgen $(BENCH_BIN)/latprobe $(BENCH_BIN)/fsyncrate \
               $(BENCH_BIN)/filler $(BENCH_BIN)/ecertd-stats
BENCH_CFLAGS = $(CFLAGS) -std=c17 -D_GNU_SOURCE $(WARN)
SCALE_N     ?= 10000000

.PHONY: bench bench-scale bench-tools

bench-tools: $(BENCH_TOOLS)

$(BENCH_BIN)/loadgen: tests/bench/loadgen.c
	@mkdir -p $(dir $@)
	$(CC) $(BENCH_CFLAGS) -o $@ $< -lcurl

$(BENCH_BIN)/latprobe: tests/bench/latprobe.c
	@mkdir -p $(dir $@)
	$(CC) $(BENCH_CFLAGS) -o $@ $< -lcurl -lpthread

$(BENCH_BIN)/fsyncrate: tests/bench/fsyncrate.c
	@mkdir -p $(dir $@)
	$(CC) $(BENCH_CFLAGS) -o $@ $<

$(BENCH_BIN)/filler: tests/bench/filler.c $(patsubst %.c,$(B)/obj/%.o,$(QUEUE_SRC))
	@mkdir -p $(dir $@)
	$(CC) $(BENCH_CFLAGS) $(XCFLAGS) -o $@ $^ $(LDLIBS)

# ecertd with a thread that publishes queue_stats() (hand-ins, commits):
# the same objects as build/ecertd plus tests/bench/stats_hook.c.
$(BENCH_BIN)/ecertd-stats: tests/bench/stats_hook.c $(DAEMON_OBJ) $(CORE_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(BENCH_CFLAGS) $(XCFLAGS) -o $@ $^ $(GSOAPLIB) $(LDLIBS) -lesmtp -lm

bench: all $(BENCH_TOOLS)
	bash tests/bench/run.sh

bench-scale: all $(BENCH_TOOLS)
	SCALE_N=$(SCALE_N) bash tests/bench/run.sh --scale
