#!/usr/bin/env bash
# Forms a knode cluster of N agents on loopback as an ordinary user, without
# touching the host (--dry-run --foreground), shows `knode status`, then makes
# every agent leave. Usage: scripts/demo.sh [N] (default 3).
set -euo pipefail
n=${1:-3}
knode=${KNODE:-bin/knode}
work=$(mktemp -d /tmp/knode-demo.XXXXXX)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT INT TERM

base=$(( 20000 + RANDOM % 20000 ))
echo "==> knode init on node1 (127.0.0.1:$base)"
"$knode" init --dry-run --foreground --node-name node1 --bind "127.0.0.1:$base" \
  --data-dir "$work/node1" --log-level warn >"$work/node1.out" 2>"$work/node1.err" &
pids+=($!)
for _ in $(seq 100); do grep -q "knode join" "$work/node1.out" 2>/dev/null && break; sleep 0.1; done
cat "$work/node1.out"
token=$("$knode" token --data-dir "$work/node1")
for i in $(seq 2 "$n"); do
  port=$(( base + i - 1 ))
  echo "==> knode join 127.0.0.1:$base on node$i (127.0.0.1:$port)"
  "$knode" join "127.0.0.1:$base" --token "$token" --dry-run --foreground --node-name "node$i" \
    --bind "127.0.0.1:$port" --data-dir "$work/node$i" --log-level warn >"$work/node$i.out" 2>&1 &
  pids+=($!)
done
# Wait until the node whose view is shown sees every node with its subnet.
for _ in $(seq 100); do
  [ "$("$knode" status --json --data-dir "$work/node$n" 2>/dev/null | grep -c '"podCIDR": "10')" -ge "$n" ] && break
  sleep 0.1
done
echo
# Exit code 3 (not healthy): --dry-run nodes run no kubelet, so none reports health.
"$knode" status --data-dir "$work/node$n" || true
echo
echo "==> every agent leaves (Ctrl-C in a real terminal)"
