#!/bin/bash
# vm.sh: knode's VM lab. N QEMU VMs booting a Debian 12 image (real kernel, systemd, cgroup v2)
# on a bridge inside a network namespace of the lab's own (no uplink: traffic stays on it).
#
#   vm.sh up [N]           deps + image + namespace/bridge + N VMs (default 2), waits for ssh
#   vm.sh cluster [N]      `make vm-lab`: up, provision.sh init on vm1 and join on the others,
#                          waits until every node is Ready, prints status and nodes
#   vm.sh down             journals and consoles kept, VMs stopped, taps, bridge, namespace removed
#   vm.sh deps | image | accel | status | ip VM | front-ip VM
#   vm.sh ssh VM CMD...    run CMD in VM (as root, over ssh from inside the namespace)
#   vm.sh reboot VM        reboot VM from inside and wait until it answers again
#   vm.sh snapshot VM      links, routes, iptables, sysctls, units, files under /etc and /var/lib
#   vm.sh mem VM           resident memory of the VM's qemu on the host, MiB
#   vm.sh journal VM       save VM's journal (this boot and earlier ones) into the work dir
# VM is vmI or just I (1..N). VM I has address 10.213.0.(10+I)/24 on eth0; the bridge is
# 10.213.0.1. A VM listed in KNODE_VM_TWO_NICS has a second interface, eth1, with
# 10.214.0.(10+I)/24 on a second bridge (10.214.0.1) that carries its default route: its
# cluster network is then neither its default route nor its only private address.
#
# Environment (defaults in brackets):
#   KNODE_VM_STATE [/var/lib/knode-vm]   image cache (keyed by a hash of image.sh) and .debs
#   KNODE_VM_WORK [e2e/_work/vm]         overlays, consoles, journals, the 9p share, logs
#   KNODE_VM_ACCEL []                    kvm or tcg; empty: kvm when /dev/kvm is a VMX/SVM KVM
#   KNODE_VM_MEM [2048] KNODE_VM_CPUS [1]  per VM (MiB, vCPUs)
#   KNODE_VM_MASTER_CPUS [2]             vCPUs of vm1 (the master the scenarios init): with 1,
#                                        under TCG, its controller-manager lost its lease in a
#                                        loop; 2 need the host's cores free (see e2e/README)
#   KNODE_BIN []                         the knode binary copied into the VMs (cluster)
#   KNODE_INIT_ARGS [] KNODE_JOIN_ARGS [] extra flags of `knode init` / `knode join`
#   KNODE_VM_TIMEOUT [2700]              seconds to wait for ssh, and for all nodes Ready (TCG
#                                        init measured up to 1953 s here)
#   KNODE_VM_KEEP [0]                    1: keep the VMs after a failure of up or cluster
#   KNODE_VM_LOCK [/run/knode-e2e.lock]  the lab lock, shared with the container lab: `up`
#                                        takes it and the VMs hold it until they stop
#   KNODE_VM_LOCK_HELD [0]               1: the caller holds that lock already (make vm-e2e)
#   KNODE_VM_TWO_NICS []                 VMs (numbers, space-separated) with a second interface
set -euo pipefail

VM_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$VM_DIR/../.." && pwd)
STATE=${KNODE_VM_STATE:-/var/lib/knode-vm}
WORK=${KNODE_VM_WORK:-$REPO/e2e/_work/vm}
RUN=$WORK/run
SHARE=$WORK/share
MNT=/mnt/knode-lab   # where each VM mounts the share (image.sh writes its fstab entry)
MEM=${KNODE_VM_MEM:-2048}
CPUS=${KNODE_VM_CPUS:-1}
MASTER_CPUS=${KNODE_VM_MASTER_CPUS:-2}
TIMEOUT=${KNODE_VM_TIMEOUT:-2700}
LOCK=${KNODE_VM_LOCK:-/run/knode-e2e.lock}
NS=knode-vm
BRIDGE=kvmbr0
BASE=10.213.0
# The second network of the VMs in KNODE_VM_TWO_NICS: their default route, not the cluster's.
FRONT_BRIDGE=kvmbr1
FRONT_BASE=10.214.0
TWO_NICS=" ${KNODE_VM_TWO_NICS:-} "
# The provisioning script the VMs run; vagrant/Vagrantfile names the same file.
PROVISION=$VM_DIR/provision.sh

say() { printf '[vm %s] %s\n' "$(date +%T)" "$*" >&2; }
die() { say "ERROR: $*"; exit 1; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN{printf "%.1f", b-a}'; }
nsx() { ip netns exec "$NS" "$@"; }

vm_num() {
  local n=${1#vm}
  case $n in '' | *[!0-9]*) die "no such VM '$1' (vm1, vm2, ... or 1, 2, ...)" ;; esac
  echo "$n"
}
vm_ip() { echo "$BASE.$((10 + $(vm_num "$1")))"; }
# vm_front_ip VM: its address on the second network, empty for a VM with one interface.
vm_front_ip() {
  local i; i=$(vm_num "$1")
  case $TWO_NICS in *" $i "*) echo "$FRONT_BASE.$((10 + i))" ;; esac
}
# vms: every VM with a pid file or an overlay (qemu removes its pid file when it exits).
vms() { for f in "$RUN"/vm*.pid "$RUN"/vm*.qcow2; do [ -f "$f" ] && basename "${f%.*}"; done | sort -uV; }

# ---------------------------------------------------------------- dependencies
cmd_deps() {
  local missing=() log=$STATE/apt.log
  mkdir -p "$STATE"
  command -v qemu-system-x86_64 >/dev/null || missing+=(qemu-system-x86)
  command -v qemu-img >/dev/null || missing+=(qemu-utils)
  command -v debootstrap >/dev/null || missing+=(debootstrap)
  command -v mkfs.ext4 >/dev/null || missing+=(e2fsprogs)
  command -v ssh >/dev/null || missing+=(openssh-client)
  command -v ssh-keygen >/dev/null || missing+=(openssh-client)
  [ ${#missing[@]} -eq 0 ] && return 0
  say "installing ${missing[*]} with apt-get"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -q --no-install-recommends "${missing[@]}" >"$log" 2>&1 ||
    { apt-get update -q >>"$log" 2>&1 && apt-get install -y -q --no-install-recommends "${missing[@]}" >>"$log" 2>&1; } ||
    { tail -20 "$log" >&2; die "apt-get install ${missing[*]} failed (log: $log)"; }
}

# ---------------------------------------------------------------- image
image_dir() { echo "$STATE/image-$(sha256sum "$VM_DIR/image.sh" | cut -c1-12)"; }

cmd_image() {
  local img t0; img=$(image_dir)
  if [ -f "$img/disk.qcow2" ]; then say "VM image $img is cached"; return 0; fi
  t0=$(now)
  # one image build at a time, whoever asks
  exec 8>"$STATE/image.lock"; flock 8
  if [ ! -f "$img/disk.qcow2" ]; then
    STATE=$STATE "$VM_DIR/image.sh" "$img" >&2 || die "VM image build failed (log: $STATE/debootstrap.log)"
  fi
  exec 8>&-
  say "VM image $img built in $(since "$t0")s"
}

# ---------------------------------------------------------------- accelerator
# KVM only when /dev/kvm is an ordinary VMX/SVM KVM: a PVM-only /dev/kvm (kvm_pvm) opens and
# creates VMs, but cannot boot a stock Debian kernel, so it falls back to TCG.
cmd_accel() {
  if [ -n "${KNODE_VM_ACCEL:-}" ]; then echo "$KNODE_VM_ACCEL"; return; fi
  if [ -r /dev/kvm ] && [ -w /dev/kvm ] && { [ -d /sys/module/kvm_intel ] || [ -d /sys/module/kvm_amd ]; } &&
    grep -qE '^flags.* (vmx|svm)( |$)' /proc/cpuinfo; then
    echo kvm
  else
    echo tcg
  fi
}

# ---------------------------------------------------------------- lock
# The VMs are started with fd 9 open on the lab lock, so the lock is held until the last VM
# stops: neither a container lab nor another VM lab can start meanwhile.
take_lock() {
  [ "${KNODE_VM_LOCK_HELD:-0}" = 1 ] && return 0
  exec 9>>"$LOCK"
  if ! flock -n 9; then
    say "waiting for the lab lock $LOCK (another lab runs on this machine)"
    flock 9
  fi
}

# ---------------------------------------------------------------- network
cmd_net_up() {
  ip netns list | grep -qw "^$NS" && return 0
  ip netns add "$NS"
  nsx ip link set lo up
  nsx ip link add "$BRIDGE" type bridge
  nsx ip addr add "$BASE.1/24" dev "$BRIDGE"
  nsx ip link set "$BRIDGE" up
  nsx ip link add "$FRONT_BRIDGE" type bridge
  nsx ip addr add "$FRONT_BASE.1/24" dev "$FRONT_BRIDGE"
  nsx ip link set "$FRONT_BRIDGE" up
}

cmd_net_down() {
  ip netns list | grep -qw "^$NS" || return 0
  ip netns del "$NS"   # takes the bridge and taps with it
  say "namespace $NS removed"
}

# ---------------------------------------------------------------- VMs
vm_ssh() {
  local vm=$1; shift
  nsx ssh -i "$(image_dir)/id_ed25519" -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null \
    -o LogLevel=ERROR -o ConnectTimeout=30 -o ServerAliveInterval=15 -o BatchMode=yes \
    "root@$(vm_ip "$vm")" "$@"
}

# wait_ssh VM SECONDS: until the VM runs a command over ssh.
wait_ssh() {
  local vm=$1 deadline=$(($(date +%s) + $2))
  until vm_ssh "$vm" true 2>/dev/null; do
    [ "$(date +%s)" -lt "$deadline" ] || return 1
    qemu_pid "$vm" >/dev/null || { say "$vm: qemu exited (console: $RUN/$vm.console)"; return 1; }
    sleep 2
  done
  wait_share "$vm" "$deadline"
}

# wait_share VM DEADLINE: until the lab share is mounted in the VM. Its fstab entry is nofail,
# so boot does not wait for it and sshd can answer first: under TCG a provision.sh run once
# found /mnt/knode-lab still empty. `systemctl start` on the mount joins a mount job already
# under way (or starts one that failed), so the share is never mounted twice.
# Two minutes at most: a mount that keeps failing that long will not heal.
wait_share() {
  local vm=$1 deadline=$2
  [ "$deadline" -le $(($(date +%s) + 120)) ] || deadline=$(($(date +%s) + 120))
  until vm_ssh "$vm" "mountpoint -q $MNT || systemctl start $MNT; mountpoint -q $MNT" 2>/dev/null; do
    if [ "$(date +%s)" -ge "$deadline" ]; then
      say "$vm: the lab share is not mounted at $MNT; its mount unit says:"
      vm_ssh "$vm" "systemctl status --no-pager --lines 20 $MNT" >&2 || true
      return 1
    fi
    sleep 2
  done
}

# qemu_pid VM: the PID of the VM's qemu, only if it still is our qemu.
qemu_pid() {
  local p
  p=$(cat "$RUN/$1.pid" 2>/dev/null) || return 1
  [ -n "$p" ] && [ "$(cat "/proc/$p/comm" 2>/dev/null)" = qemu-system-x86 ] || return 1
  tr '\0' ' ' <"/proc/$p/cmdline" | grep -qF -- "-name $1 " || return 1
  echo "$p"
}

start_vm() {
  local vm=$1 i ip tap accel img acc cpus=$CPUS front net nic2=()
  i=$(vm_num "$vm"); ip=$(vm_ip "$vm"); tap=kvmtap$i; img=$(image_dir); accel=$(cmd_accel)
  front=$(vm_front_ip "$vm")
  net="knode_vm.ip=$ip/24 knode_vm.gw=$BASE.1"
  [ "$i" = 1 ] && cpus=$MASTER_CPUS
  if qemu_pid "$vm" >/dev/null; then say "$vm already running"; return 0; fi
  case $accel in
  kvm) acc=(-accel kvm -cpu host) ;;
  tcg) acc=(-accel tcg,tb-size=256 -cpu max) ;;
  *) die "KNODE_VM_ACCEL must be kvm or tcg, got '$accel'" ;;
  esac
  nsx ip link show "$tap" >/dev/null 2>&1 || nsx ip tuntap add "$tap" mode tap
  nsx ip link set "$tap" master "$BRIDGE" up
  if [ -n "$front" ]; then
    # eth1 on the front bridge takes the default route; eth0 keeps only its own subnet.
    nsx ip link show "kvmftap$i" >/dev/null 2>&1 || nsx ip tuntap add "kvmftap$i" mode tap
    nsx ip link set "kvmftap$i" master "$FRONT_BRIDGE" up
    net="knode_vm.ip=$ip/24 knode_vm.ip2=$front/24 knode_vm.gw2=$FRONT_BASE.1"
    nic2=(-netdev "tap,id=n1,ifname=kvmftap$i,script=no,downscript=no"
      -device "virtio-net-pci,netdev=n1,mac=52:54:00:d5:01:$(printf %02x $((10 + i)))")
  fi
  [ -f "$RUN/$vm.qcow2" ] || qemu-img create -q -f qcow2 -b "$img/disk.qcow2" -F qcow2 "$RUN/$vm.qcow2"
  # -kernel/-initrd: the image's own kernel, no boot loader; a guest reboot boots it again.
  nsx qemu-system-x86_64 -name "$vm" "${acc[@]}" -smp "$cpus" -m "$MEM" -M q35 \
    -nodefaults -display none -kernel "$img/vmlinuz" -initrd "$img/initrd.img" \
    -append "root=LABEL=knode-vm rw console=ttyS0 net.ifnames=0 systemd.hostname=$vm $net" \
    -drive "file=$RUN/$vm.qcow2,if=virtio,cache=unsafe,discard=unmap" \
    -netdev "tap,id=n0,ifname=$tap,script=no,downscript=no" \
    -device "virtio-net-pci,netdev=n0,mac=52:54:00:d5:00:$(printf %02x $((10 + i)))" "${nic2[@]}" \
    -virtfs "local,path=$SHARE,mount_tag=knodelab,security_model=none" \
    -serial "file:$RUN/$vm.console" -monitor "unix:$RUN/$vm.mon,server=on,wait=off" \
    -pidfile "$RUN/$vm.pid" -daemonize
  say "$vm started: pid $(cat "$RUN/$vm.pid"), $ip${front:+ and $front (default route)}, accel $accel, $cpus vCPU, $MEM MiB"
}

cmd_up() {
  local count=${1:-2} t0 i vm
  t0=$(now)
  cmd_deps; cmd_image
  take_lock
  mkdir -p "$RUN" "$SHARE"
  cmd_net_up
  for i in $(seq 1 "$count"); do start_vm "vm$i"; done
  exec 9>&-   # the VMs hold the lock now
  for i in $(seq 1 "$count"); do
    vm=vm$i
    wait_ssh "$vm" "$TIMEOUT" || die "$vm did not answer over ssh in ${TIMEOUT}s (console: $RUN/$vm.console)"
    say "$vm answers over ssh $(since "$t0")s after start"
  done
}

# cmd_journal VM: the VM's journal, all boots, into the work dir (best effort).
cmd_journal() {
  local vm=$1
  mkdir -p "$WORK/logs"
  # Bounded: a VM starved of CPU under TCG took minutes to export it, holding the lab lock.
  timeout 60 "${BASH_SOURCE[0]}" ssh "$vm" journalctl --no-pager -b all -o short-monotonic >"$WORK/logs/$vm.journal" 2>/dev/null ||
    timeout 60 "${BASH_SOURCE[0]}" ssh "$vm" journalctl --no-pager -o short-monotonic >"$WORK/logs/$vm.journal" 2>/dev/null || return 1
}

cmd_down() {
  local vm p t0 grace=30
  t0=$(now)
  for vm in $(vms); do
    qemu_pid "$vm" >/dev/null || continue
    cmd_journal "$vm" && say "$vm: journal saved in $WORK/logs/$vm.journal" || true
  done
  for vm in $(vms); do vm_ssh "$vm" systemctl poweroff >/dev/null 2>&1 & done
  wait || true
  for vm in $(vms); do
    if p=$(qemu_pid "$vm"); then
      for _ in $(seq "$grace"); do kill -0 "$p" 2>/dev/null || break; sleep 1; done
      if kill -0 "$p" 2>/dev/null; then say "$vm: no clean shutdown in ${grace}s, kill $p"; kill "$p" || true; sleep 1; fi
    fi
    mkdir -p "$WORK/logs"
    [ -f "$RUN/$vm.console" ] && cp -f "$RUN/$vm.console" "$WORK/logs/$vm.console"
    rm -f "$RUN/$vm.pid" "$RUN/$vm.qcow2" "$RUN/$vm.mon"
    say "$vm stopped"
  done
  cmd_net_down
  say "VM lab down in $(since "$t0")s (consoles and journals in $WORK/logs)"
}

cmd_reboot() {
  local vm=$1 t0 before now deadline
  t0=$(now)
  before=$(vm_ssh "$vm" cat /proc/sys/kernel/random/boot_id) || die "$vm does not answer over ssh"
  vm_ssh "$vm" 'systemctl reboot' >/dev/null 2>&1 || true
  # Until it answers from a new boot (under TCG the old one may answer for a while).
  deadline=$(($(date +%s) + TIMEOUT))
  while :; do
    now=$(vm_ssh "$vm" cat /proc/sys/kernel/random/boot_id 2>/dev/null) || now=$before
    [ "$now" = "$before" ] || break
    [ "$(date +%s)" -lt "$deadline" ] || die "$vm did not come back from a reboot in ${TIMEOUT}s (console: $RUN/$vm.console)"
    sleep 2
  done
  wait_share "$vm" "$deadline" || die "$vm came back from a reboot without the lab share"
  say "$vm rebooted, answers over ssh after $(since "$t0")s"
}

# cmd_snapshot VM: what knode may change on a host, in "== section" form (the Go harness
# normalises the network sections with lab.NormaliseNetState and compares before and after).
cmd_snapshot() {
  # shellcheck disable=SC2016 # expanded in the VM
  vm_ssh "$1" '
    echo "== ip -d link"; ip -d link show
    echo "== ip addr"; ip addr show
    echo "== ip route"; ip route show table all
    echo "== ip rule"; ip rule show
    for s in iptables-nft-save ip6tables-nft-save iptables-legacy-save ip6tables-legacy-save; do
      echo "== $s"; $s 2>&1 || true
    done
    echo "== sysctl"
    sysctl net.ipv4.ip_forward net.ipv4.conf.all.forwarding net.ipv6.conf.all.forwarding \
      vm.overcommit_memory vm.panic_on_oom kernel.panic kernel.panic_on_oops \
      kernel.keys.root_maxkeys kernel.keys.root_maxbytes 2>&1
    # (not net.bridge.*: those exist while br_netfilter is loaded, and reset leaves modules
    # loaded by design, as something else may use them by then)
    echo "== units"; systemctl list-unit-files --no-legend --no-pager | sort
    echo "== running"; systemctl list-units --type=service --no-legend --no-pager --state=running --plain | awk "{print \$1}" | sort
    echo "== slices"; systemctl list-units --type=slice --all --no-legend --no-pager --plain | awk "{print \$1}" | sort
    echo "== files"
    find /etc /var/lib /usr/local /opt -xdev \
      \( -path /var/lib/systemd -o -path /var/lib/apt -o -path /var/lib/dpkg -o -path /etc/ssh -o -path /usr/local/bin/knode \) -prune \
      -o -printf "%p %M %u\n" 2>/dev/null | sort
    echo "== /etc contents"; find /etc -xdev -path /etc/ssh -prune -o -type f -print0 | sort -z | xargs -0 sha256sum
    echo "== mounts"; findmnt -rn -o TARGET,FSTYPE | grep -v "^/run/user" | sort'
}

cmd_status() {
  echo "accel: $(cmd_accel); image: $(image_dir) $([ -f "$(image_dir)/disk.qcow2" ] && echo cached || echo 'not built')"
  ip netns list | grep -qw "^$NS" && echo "namespace $NS: present" || echo "namespace $NS: absent"
  local vm p
  for vm in $(vms); do
    if p=$(qemu_pid "$vm"); then echo "$vm $(vm_ip "$vm") pid $p running"; else echo "$vm stopped"; fi
  done
}

# ---------------------------------------------------------------- cluster
guard() {
  [ "${KNODE_VM_KEEP:-0}" = 1 ] && return 0
  trap 'rc=$?; [ $rc -eq 0 ] || { say "failed: removing the VM lab (KNODE_VM_KEEP=1 keeps it)"; cmd_down || true; }; exit $rc' EXIT
  trap 'exit 130' INT TERM
}

cmd_cluster() {
  local count=${1:-2} t0 tinit tj i ready=0 deadline
  [ -n "${KNODE_BIN:-}" ] && [ -f "$KNODE_BIN" ] || die "set KNODE_BIN to the knode binary (make vm-lab does)"
  guard
  t0=$(now)
  mkdir -p "$SHARE" "$WORK/logs"
  rm -f "$SHARE/join-command" "$SHARE"/*.json
  cp -f "$KNODE_BIN" "$SHARE/knode"
  cp -f "$PROVISION" "$SHARE/provision.sh"
  cmd_up "$count"

  # Under TCG a node takes minutes where a real machine takes seconds: knode's own waits
  # (--timeout, default 10m) get the lab's timeout unless the arguments set one.
  local slow=()
  [ "$(cmd_accel)" = kvm ] || slow=(--timeout "${TIMEOUT}s")
  say "== vm1: provision.sh init ${slow[*]} ${KNODE_INIT_ARGS:-}"
  tinit=$(now)
  # shellcheck disable=SC2086 # KNODE_INIT_ARGS is a word list on purpose
  vm_ssh vm1 $MNT/provision.sh init $MNT "${slow[@]}" ${KNODE_INIT_ARGS:-} 2>&1 | tee "$WORK/logs/init.log" >&2 ||
    die "init failed on vm1 (output: $WORK/logs/init.log)"
  say "vm1: init returned after $(since "$tinit")s"
  for i in $(seq 2 "$count"); do
    say "== vm$i: provision.sh join ${slow[*]} ${KNODE_JOIN_ARGS:-}"
    tj=$(now)
    # shellcheck disable=SC2086
    vm_ssh "vm$i" $MNT/provision.sh join $MNT "${slow[@]}" ${KNODE_JOIN_ARGS:-} 2>&1 | tee "$WORK/logs/join-$i.log" >&2 ||
      die "join failed on vm$i (output: $WORK/logs/join-$i.log)"
    say "vm$i: join returned after $(since "$tj")s"
  done

  deadline=$(($(date +%s) + TIMEOUT))
  while :; do
    ready=$(vm_ssh vm1 knode kubectl get nodes --no-headers 2>/dev/null | awk '$2=="Ready"' | wc -l) || ready=0
    [ "$ready" -ge "$count" ] && break
    [ "$(date +%s)" -lt "$deadline" ] || die "only $ready of $count nodes Ready after ${TIMEOUT}s"
    sleep 5
  done
  say "$count nodes Ready $(since "$t0")s after start (init to all Ready: $(since "$tinit")s, accel $(cmd_accel))"
  echo; vm_ssh vm1 knode status --wait --timeout 5m || say "WARNING: the cluster is not healthy (problems above)"
  echo; vm_ssh vm1 knode kubectl get nodes -o wide || say "WARNING: 'knode kubectl get nodes' failed"
  trap - EXIT
  cat <<EOF

VM lab up: $count VMs. e2e/vm/vm.sh ssh 1 knode status | e2e/vm/vm.sh ssh 2 journalctl -u knode
The VMs hold the lab lock ($LOCK): 'make vm-lab-down' when done.
EOF
}

usage() { sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; }

main() {
  [ "$(id -u)" = 0 ] || case ${1:-} in help | -h | --help | accel) ;; *) die "run as root" ;; esac
  local c=${1:-help}
  shift || true
  case $c in
  up) cmd_up "$@" ;;
  cluster) cmd_cluster "$@" ;;
  down) cmd_down ;;
  deps) cmd_deps ;;
  image) cmd_deps; cmd_image ;;
  accel) cmd_accel ;;
  status) cmd_status ;;
  ip) vm_ip "${1:?VM}" ;;
  front-ip) vm_front_ip "${1:?VM}" ;;
  ssh) vm=vm$(vm_num "${1:?VM}"); shift; vm_ssh "$vm" "$@" ;;
  mem) p=$(qemu_pid "vm$(vm_num "${1:?VM}")") || die "vm${1#vm} is not running"
    awk '/^VmRSS:/{printf "%d\n", $2/1024}' "/proc/$p/status" ;;
  snapshot) cmd_snapshot "vm$(vm_num "${1:?VM}")" ;;
  reboot) cmd_reboot "vm$(vm_num "${1:?VM}")" ;;
  journal) cmd_journal "vm$(vm_num "${1:?VM}")" ;;
  help | -h | --help) usage ;;
  *) usage >&2; exit 2 ;;
  esac
}

main "$@"; exit
