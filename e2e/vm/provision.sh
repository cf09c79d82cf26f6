#!/bin/bash
# provision.sh: make a fresh Debian machine a knode node. One script for both VM labs: the QEMU
# lab (e2e/vm/vm.sh runs it in each VM over ssh, from its 9p share) and vagrant/Vagrantfile
# (a shell provisioner, from the synced folder), so the two cannot drift.
#
#   provision.sh init SHARE [knode init flags...]   the first machine
#   provision.sh join SHARE [knode join flags...]   every other machine
#
# SHARE is a directory every machine sees: it holds the knode binary (SHARE/knode), installed
# to /usr/local/bin/knode. `init` leaves the join command it printed in SHARE/join-command;
# `join` waits for that file (KNODE_JOIN_WAIT seconds, default 900) and runs it.
# KNODE_ADDRESS, when set, is this machine's address on the cluster network, for machines with
# more than one interface (Vagrant's NAT interface comes first): gossip advertises ADDRESS:7946.
# Run as root. The JSON outcomes (with knode's timing tables) are kept in SHARE/init.json and
# SHARE/join-HOSTNAME.json.
set -euo pipefail

say() { printf '[provision %s %s] %s\n' "$(hostname)" "$(date +%T)" "$*" >&2; }
die() { say "ERROR: $*"; exit 1; }

role=${1:-}
share=${2:-}
case $role in init | join) ;; *) die "usage: provision.sh init|join SHARE [flags...] (got '${role}')" ;; esac
[ -n "$share" ] && [ -d "$share" ] || die "SHARE '${share}' is not a directory (the folder every machine sees)"
shift 2
[ "$(id -u)" = 0 ] || die "run as root"
[ -f "$share/knode" ] || die "no knode binary at $share/knode: put bin/knode (make) there first"

install -m 0755 "$share/knode" /usr/local/bin/knode.new
mv -f /usr/local/bin/knode.new /usr/local/bin/knode
# Not `knode version`: as root, any knode command stages the payload first, and init's timing
# table is to show that staging.
say "installed /usr/local/bin/knode ($(stat -c %s /usr/local/bin/knode) bytes)"

extra=()
if [ -n "${KNODE_ADDRESS:-}" ]; then extra+=(--advertise "$KNODE_ADDRESS:7946"); fi

if [ "$role" = init ]; then
  rm -f "$share/join-command"
  t0=$(date +%s)
  knode init --json "${extra[@]}" "$@" >"$share/init.json.tmp"
  mv "$share/init.json.tmp" "$share/init.json"
  # The one field scripts need from init's JSON (no jq on a bare Debian).
  cmd=$(sed -n 's/^ *"join": "\(knode join [^"]*\)".*/\1/p' "$share/init.json")
  [ -n "$cmd" ] || die "no join command in $share/init.json"
  printf '%s\n' "$cmd" >"$share/join-command.tmp"
  mv "$share/join-command.tmp" "$share/join-command"
  say "init done in $(($(date +%s) - t0)) s; join command in $share/join-command"
  exit 0
fi

wait=${KNODE_JOIN_WAIT:-900}
for _ in $(seq "$wait"); do [ -s "$share/join-command" ] && break; sleep 1; done
[ -s "$share/join-command" ] || die "no $share/join-command after ${wait}s: has the first machine run 'provision.sh init'?"
read -r knode sub peer flag token rest <"$share/join-command"
[ "$knode $sub $flag" = "knode join --token" ] && [ -z "$rest" ] ||
  die "unexpected join command in $share/join-command: $(cat "$share/join-command")"
t0=$(date +%s)
knode join "$peer" --token "$token" --json "${extra[@]}" "$@" >"$share/join-$(hostname).json"
say "join done in $(($(date +%s) - t0)) s"
