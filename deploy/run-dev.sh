#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# run-dev.sh - what `make run` starts: a development gateway on the example
# configuration, with a throwaway CA (var/dev-ca/), the store in
# var/ecert.db, and a local Postfix smtp-sink on 127.0.0.1:2525 that
# receives the pushed mail into var/mail/.  Ctrl-C stops both.
set -euo pipefail
cd "$(dirname "$0")/.."

mkdir -p var/mail
chmod 0755 var
chmod 0777 var/mail            # smtp-sink drops its privileges to nobody
bash deploy/dev-ca.sh var/dev-ca

sink=/usr/sbin/smtp-sink
if [ -x "$sink" ]; then
    sinkuser=()
    [ "$(id -u)" = 0 ] && sinkuser=(-u nobody)
    # -d: one file per message in var/mail/ (time stamp + random suffix).
    "$sink" "${sinkuser[@]}" -d "$PWD/var/mail/%Y%m%d-%H%M%S." 127.0.0.1:2525 64 &
    sinkpid=$!
    trap 'kill $sinkpid 2>/dev/null || true' EXIT
    echo "run-dev.sh: smtp-sink on 127.0.0.1:2525 writing to var/mail/"
else
    echo "run-dev.sh: $sink not found: pushed mail will be retried" >&2
fi

build/ecertd -t -c config/ecertd.example.conf
build/ecertd -f -c config/ecertd.example.conf
