#!/bin/bash
# lab.sh: knode's end-to-end lab. Nodes are privileged systemd containers on an internal docker
# network, run by a dockerd of the lab's own (see ../README.md for the why of every flag).
#
#   lab.sh up [N]          deps + dockerd + node image + network + N nodes (default 3)
#   lab.sh down            remove nodes, volumes, network, iptables rule, and the lab's dockerd
#   lab.sh cluster [N]     `make lab`: up, copy $KNODE_BIN, knode init / join, wait, status
#   lab.sh nodes-up [N]    network + N nodes (dockerd and image must be there: `prepare`)
#   lab.sh nodes-down      remove nodes, volumes, network and its iptables rule
#   lab.sh prepare         deps + dockerd + node image
#   lab.sh deps | dockerd-up | dockerd-down | image | net-up | net-down
#   lab.sh exec NODE CMD...   lab.sh sh NODE   lab.sh ip NODE   lab.sh nodes
#   lab.sh stop|start|restart NODE   lab.sh copy SRC NODE:DST   lab.sh snapshot NODE
#   lab.sh mem [NODE...]   lab.sh host-snapshot   lab.sh status   lab.sh env   lab.sh purge
# NODE is a container name (knode-e2e-1) or just its number (1).
#
# Environment (defaults in brackets):
#   KNODE_E2E_STATE [/var/lib/knode-e2e]  dockerd data/exec root, socket, image build scratch
#   KNODE_E2E_WORK [e2e/_work]            logs, admin.kubeconfig
#   KNODE_E2E_DOCKER_HOST []              use this docker daemon instead of starting one
#   KNODE_E2E_PREFIX [knode-e2e]          node names PREFIX-1..N, label dev.knode.e2e=PREFIX
#   KNODE_E2E_NET [knode-e2e]  KNODE_E2E_SUBNET [172.30.77.0/24, a /24]
#   KNODE_E2E_BRIDGE [knode-e2e0]         host bridge name of the network
#   KNODE_BIN []                          knode binary copied to /usr/local/bin/knode in nodes
#   KNODE_INIT_ARGS [] KNODE_JOIN_ARGS [] extra arguments of `knode init` / `knode join`
#   KNODE_E2E_TIMEOUT [600]               seconds to wait for the cluster to become Ready
#   KNODE_E2E_KEEP [0]                    1: `cluster` keeps the lab after a failure
set -euo pipefail

LAB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$LAB_DIR/../.." && pwd)
STATE=${KNODE_E2E_STATE:-/var/lib/knode-e2e}
WORK=${KNODE_E2E_WORK:-$REPO/e2e/_work}
PREFIX=${KNODE_E2E_PREFIX:-knode-e2e}
NET=${KNODE_E2E_NET:-knode-e2e}
SUBNET=${KNODE_E2E_SUBNET:-172.30.77.0/24}
BRIDGE=${KNODE_E2E_BRIDGE:-knode-e2e0}
LABEL=dev.knode.e2e=$PREFIX
IMAGE_REPO=knode-e2e-node
EXTERNAL=${KNODE_E2E_DOCKER_HOST:-}
export DOCKER_HOST=${EXTERNAL:-unix://$STATE/docker.sock}
# Debian's CLI matches Debian's dockerd; a newer client elsewhere in PATH may shadow it.
if [ -x /usr/bin/docker ]; then DOCKER=/usr/bin/docker; else DOCKER=docker; fi
export DOCKER STATE

case "$SUBNET" in
*.0/24) BASE=${SUBNET%.0/24} ;;
*) echo "lab: KNODE_E2E_SUBNET must be a /24 ending in .0/24, got $SUBNET" >&2; exit 2 ;;
esac

say() { printf '[lab %s] %s\n' "$(date +%T)" "$*" >&2; }
die() { say "ERROR: $*"; exit 1; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN{printf "%.1f", b-a}'; }
d() { "$DOCKER" "$@"; }

# lock: one mutating lab.sh at a time per state directory.
lock() {
  mkdir -p "$STATE"
  exec 9>"$STATE/lock"
  flock -w 900 9 || die "another lab.sh holds $STATE/lock"
}

node_name() { case "$1" in *[!0-9]*) echo "$1" ;; *) echo "$PREFIX-$1" ;; esac; }
node_ip() { echo "$BASE.$((10 + $1))"; }
nodes() { d ps -a --filter "label=$LABEL" --format '{{.Names}}' | sort -V; }

# ---------------------------------------------------------------- dependencies
cmd_deps() {
  local missing=()
  command -v dockerd >/dev/null || [ -n "$EXTERNAL" ] || missing+=(docker.io)
  [ -x /usr/bin/docker ] || command -v docker >/dev/null || missing+=(docker.io)
  command -v debootstrap >/dev/null || missing+=(debootstrap)
  command -v jq >/dev/null || missing+=(jq)
  command -v iptables >/dev/null || missing+=(iptables)
  command -v findmnt >/dev/null || missing+=(util-linux)
  [ ${#missing[@]} -eq 0 ] && return 0
  say "installing ${missing[*]} with apt-get"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -q "${missing[@]}" >"$STATE/apt.log" 2>&1 ||
    { apt-get update -q >>"$STATE/apt.log" 2>&1 && apt-get install -y -q "${missing[@]}" >>"$STATE/apt.log" 2>&1; } ||
    { tail -20 "$STATE/apt.log" >&2; die "apt-get install ${missing[*]} failed (log: $STATE/apt.log)"; }
}

# ---------------------------------------------------------------- dockerd
dockerd_pid() {
  local p
  [ -f "$STATE/dockerd.pid" ] || return 1
  p=$(cat "$STATE/dockerd.pid")
  [ -n "$p" ] && kill -0 "$p" 2>/dev/null || return 1
  # only ever our own dockerd: its command line names our socket
  tr '\0' ' ' <"/proc/$p/cmdline" | grep -qF "unix://$STATE/docker.sock" || return 1
  echo "$p"
}

# host_snapshot: the host state dockerd touches, comparable before/after (no counters).
cmd_host_snapshot() {
  echo "ip_forward=$(sysctl -n net.ipv4.ip_forward)"
  echo "nft tables: $(nft list tables 2>/dev/null | tr '\n' ' ')"
  local s
  for s in iptables-save ip6tables-save; do
    echo "== $s"
    "$s" 2>/dev/null | grep -v '^#' | sed -E 's/\[[0-9]+:[0-9]+\]$/[-]/' || true
  done
  printf 'docker cgroups:'; for c in /sys/fs/cgroup/*/docker; do [ ! -d "$c" ] || printf ' %s' "$c"; done; echo
  echo "== links"; ip -br link | awk '{print $1}' | sort
  echo "== routes"; ip route
}

cmd_dockerd_up() {
  if [ -n "$EXTERNAL" ]; then
    d info >/dev/null 2>&1 || die "KNODE_E2E_DOCKER_HOST=$EXTERNAL does not answer"
    return 0
  fi
  if p=$(dockerd_pid); then
    d info >/dev/null 2>&1 && return 0
  fi
  command -v dockerd >/dev/null || die "dockerd not installed: run 'lab.sh deps'"
  mkdir -p "$STATE/docker" "$STATE/x"
  # Remember the host's state once (a crashed run's baseline is the older, truer one).
  [ -f "$STATE/host.before" ] || cmd_host_snapshot >"$STATE/host.before"
  install -m 0755 "$LAB_DIR/runc-capfix" "$STATE/runc-capfix"
  rm -f "$STATE/docker.sock"
  local t0; t0=$(now)
  # --bridge=none: no docker0; the lab only uses its own internal network.
  # capfix: lab notes workaround 1 (privileged containers on a host lacking CAP_SYS_RESOURCE).
  setsid nohup dockerd -H "unix://$STATE/docker.sock" \
    --data-root "$STATE/docker" --exec-root "$STATE/x" --pidfile "$STATE/dockerd.pid" \
    --bridge=none --add-runtime "capfix=$STATE/runc-capfix" --default-runtime capfix \
    >"$STATE/dockerd.log" 2>&1 </dev/null 9>&- &
  local i
  for i in $(seq 120); do d info >/dev/null 2>&1 && break; sleep 0.5; done
  d info >/dev/null 2>&1 || { tail -20 "$STATE/dockerd.log" >&2; die "dockerd did not start (log: $STATE/dockerd.log)"; }
  say "dockerd $(dockerd_pid) up in $(since "$t0")s on $DOCKER_HOST ($(d info --format '{{.CgroupDriver}}, cgroup v{{.CgroupVersion}}, {{.Driver}}'))"
}

# restore_host removes what dockerd left in the host's firewall and puts back what it changed.
restore_host() {
  local t r c before=$STATE/host.before
  for t in filter nat mangle raw; do
    iptables -t "$t" -S 2>/dev/null | grep -E '^-A (INPUT|OUTPUT|FORWARD|PREROUTING|POSTROUTING) .*-j DOCKER' |
      sed 's/^-A/-D/' | while read -r r; do read -ra a <<<"$r"; iptables -t "$t" "${a[@]}" || true; done || true
    for c in $(iptables -t "$t" -S 2>/dev/null | awk '$1=="-N" && $2 ~ /^DOCKER/ {print $2}'); do
      iptables -t "$t" -F "$c" || true
    done
    for c in $(iptables -t "$t" -S 2>/dev/null | awk '$1=="-N" && $2 ~ /^DOCKER/ {print $2}'); do
      iptables -t "$t" -X "$c" || true
    done
  done
  [ -f "$before" ] || return 0
  # FORWARD policy and ip_forward as they were; nft tables iptables-nft made for docker go
  # if they did not exist before and are empty now.
  if ! grep -q '^:FORWARD DROP' "$before"; then iptables -P FORWARD ACCEPT 2>/dev/null || true; fi
  sysctl -qw "net.ipv4.ip_forward=$(sed -n 's/^ip_forward=//p' "$before")" || true
  for t in filter nat mangle raw; do
    if ! grep -q "table ip $t " <(sed -n 's/^nft tables: //p' "$before" | sed 's/$/ /') &&
      ! iptables -t "$t" -S 2>/dev/null | grep -qv -- '^-P'; then
      nft delete table ip "$t" 2>/dev/null || true
    fi
  done
  # the empty "docker" cgroups dockerd made in every v1 hierarchy (rmdir only removes empty ones)
  if grep -q '^docker cgroups: *$' "$before"; then
    for c in /sys/fs/cgroup/*/docker; do
      [ -d "$c" ] && find "$c" -depth -type d -exec rmdir {} \; 2>/dev/null
    done
  fi
  if diff -u "$before" <(cmd_host_snapshot) >"$STATE/host.diff"; then
    say "host state restored (iptables, ip_forward, cgroups, links, routes equal to before dockerd)"
    rm -f "$before" "$STATE/host.diff"
  else
    cat "$STATE/host.diff" >&2
    say "WARNING: host state differs from before dockerd (diff above, $STATE/host.diff);"
    say "         something else may have changed it meanwhile; baseline kept in $before"
    return 3
  fi
}

cmd_dockerd_down() {
  [ -n "$EXTERNAL" ] && return 0
  local p t0 m
  if p=$(dockerd_pid); then
    t0=$(now)
    kill -TERM "$p"
    for _ in $(seq 60); do kill -0 "$p" 2>/dev/null || break; sleep 0.5; done
    if kill -0 "$p" 2>/dev/null; then say "dockerd $p still running after 30s, sending KILL"; kill -KILL "$p" || true; sleep 1; fi
    say "dockerd $p stopped in $(since "$t0")s"
  fi
  rm -f "$STATE/dockerd.pid" "$STATE/docker.sock"
  # mounts a killed dockerd may leave behind (overlay, netns, shm)
  findmnt -rn -o TARGET | grep -E "^$STATE/(docker|x)/" | sort -r | while read -r m; do umount -l "$m" || true; done || true
  restore_host
}

# ---------------------------------------------------------------- node image
image_tag() { echo "$IMAGE_REPO:$(sha256sum "$LAB_DIR/node-image.sh" | cut -c1-12)"; }

cmd_image() {
  local img t0; img=$(image_tag)
  if d image inspect "$img" >/dev/null 2>&1; then
    say "node image $img is cached"
  else
    t0=$(now)
    say "building node image $img (debootstrap, about 80 s)"
    "$LAB_DIR/node-image.sh" "$img"
    say "node image $img built in $(since "$t0")s ($(d image inspect -f '{{.Size}}' "$img" | awk '{printf "%d MB", $1/1e6}'))"
  fi
  d tag "$img" "$IMAGE_REPO:latest"
}

# ---------------------------------------------------------------- network
cmd_net_up() {
  if ! d network inspect "$NET" >/dev/null 2>&1; then
    # --internal: no gateway, no NAT; docker's isolation rules drop anything leaving the subnet.
    d network create --internal --subnet "$SUBNET" --label "$LABEL" \
      -o "com.docker.network.bridge.name=$BRIDGE" "$NET" >/dev/null
    say "network $NET ($SUBNET, bridge $BRIDGE, internal) created"
  fi
  # Docker's isolation chain drops bridged packets whose source or destination lies outside
  # the subnet, which is exactly routed pod traffic between nodes. Accept what enters and
  # leaves this one bridge (nothing can leave it); removed again by net-down.
  if [ -z "$EXTERNAL" ] || iptables -S DOCKER-ISOLATION-STAGE-1 >/dev/null 2>&1; then
    iptables -C DOCKER-ISOLATION-STAGE-1 -i "$BRIDGE" -o "$BRIDGE" -j ACCEPT 2>/dev/null ||
      iptables -I DOCKER-ISOLATION-STAGE-1 -i "$BRIDGE" -o "$BRIDGE" -j ACCEPT
  fi
}

cmd_net_down() {
  while iptables -D DOCKER-ISOLATION-STAGE-1 -i "$BRIDGE" -o "$BRIDGE" -j ACCEPT 2>/dev/null; do :; done
  if d network inspect "$NET" >/dev/null 2>&1; then
    d network rm "$NET" >/dev/null && say "network $NET removed"
  fi
}

# ---------------------------------------------------------------- nodes
# node_run I: start node container I (docker run returns at once; see wait_systemd).
node_run() {
  local i=$1 n; n=$(node_name "$1")
  d rm -f "$n" >/dev/null 2>&1 || true
  d volume create --label "$LABEL" "$n-containerd" >/dev/null
  local extra=()
  # KNODE_E2E_RUN_ARGS: more docker run arguments, split on blanks
  read -ra extra <<<"${KNODE_E2E_RUN_ARGS:-}"
  # kernel modules, if the host has any (this machine kind's kernel has them built in)
  [ -d /lib/modules ] && extra+=(-v /lib/modules:/lib/modules:ro)
  # Flags from the lab notes: systemd as PID 1 in a private cgroup namespace; containerd's
  # state on a volume (overlayfs cannot be its snapshotter's backing store).
  d run -d --name "$n" --hostname "$n" --label "$LABEL" \
    --network "$NET" --ip "$(node_ip "$i")" \
    --privileged --cgroupns=private \
    --security-opt seccomp=unconfined --security-opt apparmor=unconfined \
    --tmpfs /run --tmpfs /tmp -v "$n-containerd:/var/lib/containerd" \
    -e container=docker --stop-signal SIGRTMIN+3 -t \
    "${extra[@]}" \
    --entrypoint /sbin/init "$IMAGE_REPO:latest" >/dev/null
}

# wait_systemd NODE: until systemd in NODE settles; prints its state (running|degraded|...).
wait_systemd() {
  local n st; n=$(node_name "$1")
  local deadline=$(($(date +%s) + 120))
  # Usually run in $(...): a subshell without the caller's traps, whose docker exec exits
  # normally on Ctrl-C. Stop at once then, and die of the signal so that the caller's shell
  # acts on it too (bash ignores a SIGINT its child survived).
  trap 'trap - INT; kill -INT $BASHPID' INT
  trap 'trap - TERM; kill -TERM $BASHPID' TERM
  # right after a (re)start systemd may not answer on its bus yet: ask again
  while :; do
    st=$(d exec "$n" timeout 120 systemctl is-system-running --wait 2>/dev/null) || true
    case "$st" in running | degraded | maintenance | stopping) break ;; esac
    [ "$(date +%s)" -lt "$deadline" ] || break
    [ "$(d inspect -f '{{.State.Running}}' "$n" 2>/dev/null)" = true ] || { st="not running"; break; }
    sleep 0.2
  done
  echo "${st:-unknown}"
  if [ "$st" != running ]; then
    say "$n: systemd is '${st:-unknown}'; failed units:"
    d exec "$n" systemctl --failed --no-legend --plain >&2 || true
    return 1
  fi
}

copy_knode() {
  local n=$1
  [ -n "${KNODE_BIN:-}" ] || return 0
  [ -x "$KNODE_BIN" ] || die "KNODE_BIN=$KNODE_BIN is not an executable file"
  d cp "$KNODE_BIN" "$n:/usr/local/bin/knode"
}

cmd_nodes_up() {
  local count=${1:-3} i t0 n st failed=0
  if [ "$count" -lt 1 ] || [ "$count" -gt 200 ]; then die "node count must be 1..200, got $count"; fi
  d image inspect "$IMAGE_REPO:latest" >/dev/null 2>&1 || die "no node image: run 'lab.sh image' (or 'up')"
  cmd_net_up
  t0=$(now)
  for i in $(seq "$count"); do node_run "$i"; done
  for i in $(seq "$count"); do
    n=$(node_name "$i")
    st=$(wait_systemd "$i") || failed=1
    say "$n ($(node_ip "$i")): systemd $st after $(since "$t0")s"
  done
  [ "$failed" = 0 ] || die "not every node reached systemd 'running'"
  # Docker points a node's resolv.conf at its embedded DNS on 127.0.0.11, which pods that
  # inherit the node's DNS (CoreDNS) would reach as their own loopback: CoreDNS's loop
  # check then stops it. Nodes get the lab network's gateway instead (nothing answers DNS
  # there: names outside the cluster fail, which the lab never needs; traffic stays on the
  # lab network).
  for i in $(seq "$count"); do
    d exec "$(node_name "$i")" sh -c "echo 'nameserver $BASE.1' > /etc/resolv.conf"
  done
  if [ -n "${KNODE_BIN:-}" ]; then
    for i in $(seq "$count"); do copy_knode "$(node_name "$i")"; done
    say "copied $KNODE_BIN to /usr/local/bin/knode in $count nodes"
  fi
  say "$count nodes up in $(since "$t0")s"
}

cmd_nodes_down() {
  local ns vs t0; t0=$(now)
  if d info >/dev/null 2>&1; then
    ns=$(nodes | tr '\n' ' ')
    [ -z "$ns" ] || { read -ra a <<<"$ns"; d rm -f -v "${a[@]}" >/dev/null; }
    vs=$(d volume ls -q --filter "label=$LABEL" | tr '\n' ' ')
    [ -z "$vs" ] || { read -ra a <<<"$vs"; d volume rm "${a[@]}" >/dev/null; }
    cmd_net_down
    say "removed nodes [${ns% }] volumes [${vs% }] in $(since "$t0")s"
  else
    # no daemon: only our iptables rule can be left
    while iptables -D DOCKER-ISOLATION-STAGE-1 -i "$BRIDGE" -o "$BRIDGE" -j ACCEPT 2>/dev/null; do :; done
  fi
}

# ---------------------------------------------------------------- node helpers
cmd_snapshot() {
  # Raw network state of a node; the Go harness (lab.NormaliseNetState) compares it.
  local n; n=$(node_name "$1")
  # shellcheck disable=SC2016 # expanded in the node
  d exec "$n" sh -c '
    echo "== ip -d link"; ip -d link show
    echo "== ip addr"; ip addr show
    echo "== ip route"; ip route show table all
    echo "== ip rule"; ip rule show
    for s in iptables-nft-save ip6tables-nft-save iptables-legacy-save ip6tables-legacy-save; do
      echo "== $s"; $s 2>&1 || true
    done'
}

cmd_mem() {
  local n id f list=("$@")
  [ ${#list[@]} -gt 0 ] || mapfile -t list < <(nodes)
  for n in "${list[@]}"; do
    n=$(node_name "$n")
    id=$(d inspect -f '{{.Id}}' "$n")
    f=/sys/fs/cgroup/memory/docker/$id
    if [ -f "$f/memory.usage_in_bytes" ]; then
      printf '%s: usage=%dMiB ' "$n" $(($(cat "$f/memory.usage_in_bytes") / 1048576))
      awk '/^total_(rss|cache|shmem|inactive_file) /{printf "%s=%dMiB ", substr($1,7), $2/1048576}' "$f/memory.stat"
      echo
    else
      echo "$n: no cgroup v1 memory file at $f"
    fi
  done
}

cmd_status() {
  echo "state: $STATE   work: $WORK   DOCKER_HOST=$DOCKER_HOST"
  if [ -n "$EXTERNAL" ]; then echo "dockerd: external"; elif p=$(dockerd_pid); then echo "dockerd: pid $p"; else echo "dockerd: not running"; return 0; fi
  echo "image: $(image_tag) $(d image inspect "$(image_tag)" >/dev/null 2>&1 && echo cached || echo missing)"
  d network inspect "$NET" >/dev/null 2>&1 && echo "network: $NET $SUBNET bridge $BRIDGE" || echo "network: none"
  d ps -a --filter "label=$LABEL" --format 'table {{.Names}}\t{{.Status}}'
}

cmd_purge() {
  cmd_down
  say "removing $STATE (node image cache and debootstrap package cache)"
  findmnt -rn -o TARGET | grep -F "$STATE/" && die "mounts left under $STATE; not removing it"
  rm -rf --one-file-system "$STATE"
}

cmd_down() {
  local rc=0
  if [ -z "$EXTERNAL" ] && ! dockerd_pid >/dev/null; then
    # nothing runs; still drop our rule and restore the host if a crashed run left it changed
    while iptables -D DOCKER-ISOLATION-STAGE-1 -i "$BRIDGE" -o "$BRIDGE" -j ACCEPT 2>/dev/null; do :; done
    [ ! -f "$STATE/host.before" ] || restore_host || rc=$?
    return $rc
  fi
  cmd_nodes_down
  cmd_dockerd_down || rc=$?
  return $rc
}

# ---------------------------------------------------------------- cleanup guard
# guard: until unguard, any exit (an error, a failed step, Ctrl-C) removes the lab again;
# KNODE_E2E_KEEP=1 keeps it after a failure (never after an interrupt).
guard() {
  GUARDED=1
  trap on_exit EXIT
  trap 'say "interrupted: removing the lab"; KNODE_E2E_KEEP=0; exit 130' INT TERM
}
unguard() { GUARDED=0; trap - EXIT INT TERM; }
on_exit() {
  local rc=$?
  [ "${GUARDED:-0}" = 1 ] || return 0
  GUARDED=0
  trap - INT TERM
  if [ "${KNODE_E2E_KEEP:-0}" = 1 ]; then
    say "KNODE_E2E_KEEP=1: lab left as it is; 'make lab-down' removes it"
  else
    say "removing the lab (KNODE_E2E_KEEP=1 keeps it after a failure)"
    cmd_down || true
  fi
  exit "$rc"
}

# ---------------------------------------------------------------- make lab
# cluster N: bring up N nodes with knode, init on the first, join the others, as a user would.
cmd_cluster() {
  local count=${1:-3} t0 tinit tj ip1 token i n timeout=${KNODE_E2E_TIMEOUT:-600}
  [ -n "${KNODE_BIN:-}" ] || die "set KNODE_BIN to the knode binary (make lab does)"
  mkdir -p "$WORK"
  guard
  fail() { say "FAILED: $*"; exit 1; }
  knode_journal() { d exec "$1" journalctl -u knode --no-pager -n 40 2>/dev/null | sed "s/^/  $1| /" >&2 || true; }

  t0=$(now)
  cmd_deps; cmd_dockerd_up; cmd_image
  cmd_nodes_up "$count" || fail "nodes did not come up"
  # As an ordinary user: as root, any knode command stages the payload first, and init's
  # timing table is to show that staging (a user's run extracts only knode's program).
  d exec --user 65534 -e HOME=/tmp "$(node_name 1)" knode --help >/dev/null 2>&1 ||
    d exec "$(node_name 1)" knode --help >/dev/null 2>&1 ||
    fail "the knode binary does not run in a node (is $KNODE_BIN static and for linux/amd64?)"
  ip1=$(node_ip 1)

  say "== $(node_name 1): knode init ${KNODE_INIT_ARGS:-}"
  tinit=$(now)
  # shellcheck disable=SC2086 # KNODE_INIT_ARGS is a word list on purpose
  if ! d exec "$(node_name 1)" knode init ${KNODE_INIT_ARGS:-} 2>&1 | tee "$WORK/init.log" | sed "s/^/  $(node_name 1)| /"; then
    knode_journal "$(node_name 1)"; fail "'knode init' failed on $(node_name 1) (output: $WORK/init.log)"
  fi
  say "knode init returned after $(since "$tinit")s"
  # The first join command init prints: with --masters 3 or 5 it is the master token's (the first
  # nodes to join take the free seats, the later ones are workers, as before tokens had kinds).
  token=$(grep -oE -- '--token[= ]+[^ ]+' "$WORK/init.log" | head -1 | sed -E 's/--token[= ]+//') || true
  if [ -z "$token" ]; then
    say "WARNING: no '--token T' in the output of 'knode init' ($WORK/init.log); asking 'knode token'"
    token=$(d exec "$(node_name 1)" knode token 2>/dev/null | tail -1) || true
  fi
  [ -n "$token" ] || fail "no join token: neither in the output of 'knode init' (a join command with '--token T', see $WORK/init.log) nor from 'knode token'"

  for i in $(seq 2 "$count"); do
    n=$(node_name "$i")
    say "== $n: knode join $ip1:7946 --token <token> ${KNODE_JOIN_ARGS:-}"
    tj=$(now)
    # shellcheck disable=SC2086
    if ! d exec "$n" knode join "$ip1:7946" --token "$token" ${KNODE_JOIN_ARGS:-} 2>&1 | tee "$WORK/join-$i.log" | sed "s/^/  $n| /"; then
      knode_journal "$n"; fail "'knode join' failed on $n (output: $WORK/join-$i.log)"
    fi
    say "$n: knode join returned after $(since "$tj")s"
  done

  say "waiting up to ${timeout}s for $count Ready nodes"
  local ready=0 deadline=$(($(date +%s) + timeout))
  while :; do
    ready=$(d exec "$(node_name 1)" knode kubectl get nodes --no-headers 2>/dev/null | awk '$2=="Ready"' | wc -l) || ready=0
    printf '\r  %d/%d nodes Ready after %ss ' "$ready" "$count" "$(since "$t0")" >&2
    [ "$ready" -ge "$count" ] && break
    [ "$(date +%s)" -lt "$deadline" ] || { echo >&2; fail "only $ready of $count nodes Ready after ${timeout}s"; }
    sleep 3
  done
  echo >&2
  say "cluster of $count nodes Ready $(since "$t0")s after start (init to all Ready: $(since "$tinit")s)"

  echo; d exec "$(node_name 1)" knode status --wait --timeout 2m || say "WARNING: the cluster is not healthy (see 'problems' above)"
  echo; d exec "$(node_name 1)" knode kubectl get nodes -o wide || say "WARNING: 'knode kubectl get nodes' failed"
  echo
  export_kubeconfig "$ip1" || say "WARNING: could not export an admin kubeconfig"
  unguard
  cat <<EOF

The lab is up. From this host:
  export KUBECONFIG=$WORK/admin.kubeconfig     # then: kubectl get nodes
  e2e/lab/lab.sh exec 1 knode status            # or: e2e/lab/lab.sh sh 2
  make lab-down                                  # removes everything
EOF
}

# export_kubeconfig IP: the admin kubeconfig of the first node, pointing at the apiserver on IP instead of loopback.
export_kubeconfig() {
  local ip=$1 out=$WORK/admin.kubeconfig n; n=$(node_name 1)
  if ! { d exec "$n" knode kubectl config view --raw --minify >"$out.tmp" 2>/dev/null && grep -q 'server:' "$out.tmp"; }; then
    local f
    for f in /etc/knode/admin.kubeconfig /var/lib/knode/admin.kubeconfig /etc/kubernetes/admin.conf; do
      if d exec "$n" cat "$f" >"$out.tmp" 2>/dev/null && grep -q 'server:' "$out.tmp"; then break; fi
    done
  fi
  grep -q 'server:' "$out.tmp" 2>/dev/null || { rm -f "$out.tmp"; return 1; }
  # knode's kubeconfigs name the node-local endpoint (127.0.0.1:6444); from the host, the node's own apiserver.
  sed -E "s#(server: *https?://)(127\.0\.0\.1|localhost|\[::1\])(:[0-9]+)?#\1$ip:6443#" "$out.tmp" >"$out"
  rm -f "$out.tmp"; chmod 0600 "$out"
  say "admin kubeconfig: $out (server $(awk '/server:/{print $2; exit}' "$out"))"
  if [ -x /usr/bin/kubectl ]; then
    if KUBECONFIG=$out timeout 20 /usr/bin/kubectl get nodes >/dev/null 2>&1; then
      say "host kubectl reaches the cluster through it"
    else
      say "WARNING: host kubectl could not list nodes through it"
    fi
  fi
}

usage() { sed -n '2,30p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }

main() {
  local c=${1:-help}; shift || true
  case "$c" in
  up) lock; guard; cmd_deps; cmd_dockerd_up; cmd_image; cmd_nodes_up "$@"; unguard ;;
  down) lock; cmd_down ;;
  purge) lock; cmd_purge ;;
  cluster) lock; cmd_cluster "$@" ;;
  prepare) lock; cmd_deps; cmd_dockerd_up; cmd_image ;;
  deps) lock; cmd_deps ;;
  dockerd-up) lock; cmd_dockerd_up ;;
  dockerd-down) lock; cmd_dockerd_down ;;
  image) lock; cmd_image ;;
  net-up) lock; cmd_net_up ;;
  net-down) lock; cmd_net_down ;;
  nodes-up) lock; cmd_nodes_up "$@" ;;
  nodes-down) lock; cmd_nodes_down ;;
  nodes) nodes ;;
  exec) n=$(node_name "${1:?node}"); shift; d exec -i "$n" "$@" ;;
  sh) d exec -it "$(node_name "${1:?node}")" bash ;;
  ip) d inspect -f "{{(index .NetworkSettings.Networks \"$NET\").IPAddress}}" "$(node_name "${1:?node}")" ;;
  stop) d stop -t 30 "$(node_name "${1:?node}")" >/dev/null ;;
  start) d start "$(node_name "${1:?node}")" >/dev/null; wait_systemd "$1" ;;
  restart) d restart -t 30 "$(node_name "${1:?node}")" >/dev/null; wait_systemd "$1" ;;
  copy) src=${1:?src}; dst=${2:?NODE:DST}; d cp "$src" "$(node_name "${dst%%:*}"):${dst#*:}" ;;
  snapshot) cmd_snapshot "${1:?node}" ;;
  mem) cmd_mem "$@" ;;
  host-snapshot) cmd_host_snapshot ;;
  status) cmd_status ;;
  env) echo "export DOCKER_HOST=$DOCKER_HOST  # then use $DOCKER" ;;
  help | -h | --help) usage ;;
  *) usage >&2; exit 2 ;;
  esac
}

main "$@"
