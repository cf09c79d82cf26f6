#!/bin/bash
# bench-up.sh: bring-up timings of knode itself, measured by knode (the tables `knode init --json`
# and `knode join --json` end with), over RUNS fresh labs.
#
#   bench-up.sh [RUNS] [NODES]     defaults 5 and 4 (1 init + NODES-1 joins started together)
#
# Each run: NODES fresh node containers; `knode init --json` on the first; as soon as its agent
# answers `knode token`, every join starts at once; then the nodes are removed. Prints, for every
# row of the tables, the median and range of the seconds since that command started ("at") and of
# the row's own seconds ("took"), plus "all Ready with CoreDNS": init start to the last command
# returning (init returns once CoreDNS is ready, each join once its node is Ready with its pod CIDR).
# Needs the lab's dockerd and image (`lab.sh prepare`; make bench-up does it) and KNODE_BIN.
set -euo pipefail

LAB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
LAB=$LAB_DIR/lab.sh
REPO=$(cd "$LAB_DIR/../.." && pwd)
WORK=${KNODE_E2E_WORK:-$REPO/e2e/_work}/bench-up
RUNS=${1:-5}
NODES=${2:-4}
: "${KNODE_BIN:?set KNODE_BIN to the knode binary (make bench-up does)}"
mkdir -p "$WORK"
rm -f "$WORK"/*.json "$WORK"/*.log

say() { printf '[bench-up %s] %s\n' "$(date +%T)" "$*" >&2; }
now() { date +%s.%N; }
lab() { "$LAB" "$@"; }
cleanup() { lab nodes-down >/dev/null 2>&1 || true; }
trap cleanup EXIT

export KNODE_BIN
for run in $(seq 1 "$RUNS"); do
  lab nodes-up "$NODES" 2>/dev/null # fresh nodes with $KNODE_BIN as /usr/local/bin/knode
  ip1=$(lab ip 1)
  t0=$(now)
  lab exec 1 knode init --json >"$WORK/init-$run.json" 2>"$WORK/init-$run.log" &
  init=$!
  token=""
  for _ in $(seq 1 300); do
    token=$(lab exec 1 knode token --master 2>/dev/null) && [ -n "$token" ] && break
    sleep 0.1
  done
  [ -n "$token" ] || { say "run $run: no token from node 1"; exit 1; }
  pids=()
  for i in $(seq 2 "$NODES"); do
    lab exec "$i" knode join "$ip1:7946" --token "$token" --json >"$WORK/join-$run-$i.json" 2>"$WORK/join-$run-$i.log" &
    pids+=($!)
  done
  rc=0
  wait "$init" || { rc=1; say "run $run: init failed (see $WORK/init-$run.log)"; }
  for p in "${pids[@]}"; do wait "$p" || { rc=1; say "run $run: a join failed (see $WORK/join-$run-*.log)"; }; done
  all=$(awk -v a="$t0" -v b="$(now)" 'BEGIN{printf "%.2f", b-a}')
  echo "{\"all\": $all}" >"$WORK/all-$run.json"
  say "run $run: $NODES nodes Ready with CoreDNS ${all}s after init started"
  [ "$rc" -eq 0 ] || exit 1
  lab nodes-down >/dev/null
done

# median and range of a list of numbers on stdin
stats() { sort -g | awk '{v[NR]=$1} END{if(NR==0){print "-"; exit}; m=(NR%2)?v[(NR+1)/2]:(v[NR/2]+v[NR/2+1])/2; printf "%6.2f (%.2f-%.2f)", m, v[1], v[NR]}'; }
report() { # report KIND FILES...: one line per row name, in the order of the first table
  local kind=$1; shift
  printf '\n%s (n=%d)\n  %-24s %-22s %-22s\n' "$kind" "$#" "row" "at s: median (range)" "took s: median (range)"
  jq -r '.timings[].name' "$1" | while read -r row; do
    at=$(jq -r --arg r "$row" '.timings[] | select(.name==$r) | .at' "$@" | stats)
    took=$(jq -r --arg r "$row" '.timings[] | select(.name==$r) | .seconds' "$@" | stats)
    printf '  %-24s %-22s %-22s\n' "$row" "$at" "$took"
  done
}
report "knode init" "$WORK"/init-*.json
if [ "$NODES" -gt 1 ]; then report "knode join (joins started together)" "$WORK"/join-*.json; fi
printf '\n%s nodes, init start to all Ready with CoreDNS: %s s (n=%d)\n' "$NODES" \
  "$(jq -r .all "$WORK"/all-*.json | stats)" "$RUNS"
