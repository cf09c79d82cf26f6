#!/bin/bash
# node-image.sh IMAGE: build the lab's node image from debootstrap, without any registry.
#
# Called by lab.sh (which tags the result with a hash of this file, so editing this file is
# what triggers a rebuild). Env: DOCKER (the docker CLI, DOCKER_HOST already set), STATE
# (scratch space), SUITE (default bookworm).
# The Debian mirror is read from the host's apt sources at run time and is not kept in the
# image (apt sources and lists are removed before import).
set -euo pipefail

image=${1:?usage: node-image.sh IMAGE}
: "${DOCKER:?}" "${STATE:?}"
suite=${SUITE:-bookworm}

# What a knode node needs from its distribution; containerd, runc, CNI plugins and Kubernetes
# come from knode's own payload. util-linux (mount, nsenter) and mount are in minbase.
pkgs=systemd,systemd-sysv,dbus,iproute2,iptables,kmod,procps,ca-certificates,conntrack,iputils-ping

mirror() {
  local m=""
  if [ -f /etc/apt/sources.list.d/debian.sources ]; then
    m=$(awk '/^URIs:/{print $2; exit}' /etc/apt/sources.list.d/debian.sources)
  fi
  if [ -z "$m" ] && [ -f /etc/apt/sources.list ]; then
    m=$(awk '$1=="deb" && $3 !~ /security/ {print $2; exit}' /etc/apt/sources.list)
  fi
  [ -n "$m" ] || { echo "node-image: no Debian mirror found in the host's apt sources" >&2; return 1; }
  echo "$m"
}

rootfs=$STATE/rootfs
cleanup() {
  # debootstrap mounts proc/sys in the target; never rm -rf across a mount point.
  if [ -d "$rootfs" ]; then
    findmnt -rn -o TARGET | grep -F "$rootfs/" | sort -r | while read -r m; do umount -l "$m" || true; done || true
    rm -rf --one-file-system "$rootfs"
  fi
}
trap cleanup EXIT
cleanup
mkdir -p "$rootfs" "$STATE/debs"

m=$(mirror)
log=$STATE/debootstrap.log
echo "node-image: debootstrap $suite (minbase + $pkgs), log: $log"
if ! debootstrap --variant=minbase --include="$pkgs" --cache-dir="$STATE/debs" \
  "$suite" "$rootfs" "$m" >"$log.raw" 2>&1; then
  # keep the mirror host out of kept logs
  sed -e "s#$m#<mirror>#g" "$log.raw" >"$log"; rm -f "$log.raw"
  tail -20 "$log" >&2
  exit 1
fi
sed -e "s#$m#<mirror>#g" "$log.raw" >"$log"; rm -f "$log.raw"

r=$rootfs
mask() { for u in "$@"; do ln -sf /dev/null "$r/etc/systemd/system/$u"; done; }
# Units that have no business in a container (kind masks the same set).
mask getty@tty1.service console-getty.service serial-getty@ttyS0.service \
  systemd-udevd.service systemd-udevd-kernel.socket systemd-udevd-control.socket \
  systemd-modules-load.service sys-kernel-debug.mount sys-kernel-tracing.mount \
  sys-kernel-config.mount systemd-remount-fs.service systemd-firstboot.service \
  proc-sys-fs-binfmt_misc.automount systemd-networkd-wait-online.service \
  apt-daily.timer apt-daily-upgrade.timer
echo "ReadKMsg=no" >>"$r/etc/systemd/journald.conf"

# Workaround 3 of the lab notes: systemd skips `mount --make-rshared /` inside a container, and
# the kubelet needs shared propagation for Bidirectional/HostToContainer mounts.
cat >"$r/etc/systemd/system/make-rshared.service" <<'U'
[Unit]
Description=Make / a shared mount (container runtimes need mount propagation)
DefaultDependencies=no
After=local-fs.target
Before=containerd.service knode.service kubelet.service

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/bin/mount --make-rshared /

[Install]
WantedBy=multi-user.target
U

# The kubelet writes a few host-global sysctls (the node's /proc/sys is the host's there).
# Shadow them at boot with read-only bind mounts holding the values the kubelet wants, so it
# finds nothing to change and the shared host is left alone.
mkdir -p "$r/usr/local/sbin"
cat >"$r/usr/local/sbin/lab-sysctl-shadow" <<'S'
#!/bin/sh
set -eu
d=/run/lab-sysctl-shadow
mkdir -p $d
while read -r key val; do
  [ -n "$key" ] || continue
  p=/proc/sys/$(echo "$key" | tr . /)
  [ -e "$p" ] || continue
  f=$d/$key
  echo "$val" >"$f"
  grep -q " $p " /proc/self/mountinfo || mount --bind "$f" "$p"
  mount -o remount,bind,ro "$p"
done <<L
vm.overcommit_memory 1
vm.panic_on_oom 0
kernel.panic 10
kernel.panic_on_oops 1
kernel.keys.root_maxkeys 1000000
kernel.keys.root_maxbytes 25000000
L
S
chmod 0755 "$r/usr/local/sbin/lab-sysctl-shadow"
cat >"$r/etc/systemd/system/lab-sysctl-shadow.service" <<'U'
[Unit]
Description=Shadow host-global sysctls with read-only copies (e2e lab node)
DefaultDependencies=no
After=local-fs.target
Before=containerd.service knode.service kubelet.service

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/usr/local/sbin/lab-sysctl-shadow

[Install]
WantedBy=multi-user.target
U
mkdir -p "$r/etc/systemd/system/multi-user.target.wants"
for u in make-rshared.service lab-sysctl-shadow.service; do
  ln -sf "/etc/systemd/system/$u" "$r/etc/systemd/system/multi-user.target.wants/$u"
done

echo knode >"$r/etc/hostname"
: >"$r/etc/machine-id"
rm -f "$r/etc/apt/sources.list"
rm -rf "$r"/var/lib/apt/lists/* "$r"/var/cache/apt/*.bin "$r"/var/cache/apt/archives/*.deb \
  "$r"/var/log/* "$r/debootstrap"

echo "node-image: importing $image"
tar -C "$r" -c . | "$DOCKER" import \
  --change 'CMD ["/sbin/init"]' --change 'ENV container=docker' - "$image" >/dev/null
