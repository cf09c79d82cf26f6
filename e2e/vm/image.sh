#!/bin/bash
# image.sh OUT: build the VM lab's Debian 12 disk image into the directory OUT, offline from
# Debian packages (debootstrap from the mirror in the host's apt sources; no cloud image).
#
# Called by vm.sh, which names OUT after a hash of this file, so editing this file is what
# triggers a rebuild. Output: OUT/disk.qcow2 (ext4 on the whole disk, no partition table),
# OUT/vmlinuz and OUT/initrd.img (the distribution kernel, booted with -kernel/-initrd),
# OUT/id_ed25519 (the key the harness logs in with; root has no password).
# Env: STATE (scratch space and the .deb cache), SUITE (default bookworm), SIZE (default 10G).
# The mirror is read from the host's apt sources at run time and is not kept in the image.
set -euo pipefail

out=${1:?usage: image.sh OUT}
: "${STATE:?}"
suite=${SUITE:-bookworm}
size=${SIZE:-10G}

# A plain Debian server: the distribution kernel, systemd (cgroup v2 by default on bookworm),
# udev, networkd for the static address, ssh for the harness. iptables, conntrack and kmod are
# what a Debian host offers knode; containerd, runc, CNI and Kubernetes come from its payload.
pkgs=linux-image-amd64,initramfs-tools,systemd,systemd-sysv,udev,dbus,kmod,iproute2,iptables
pkgs=$pkgs,procps,ca-certificates,conntrack,iputils-ping,openssh-server,e2fsprogs

mirror() {
  local m=""
  if [ -f /etc/apt/sources.list.d/debian.sources ]; then
    m=$(awk '/^URIs:/{print $2; exit}' /etc/apt/sources.list.d/debian.sources)
  fi
  if [ -z "$m" ] && [ -f /etc/apt/sources.list ]; then
    m=$(awk '$1=="deb" && $3 !~ /security/ {print $2; exit}' /etc/apt/sources.list)
  fi
  [ -n "$m" ] || { echo "vm image: no Debian mirror found in the host's apt sources" >&2; return 1; }
  echo "$m"
}

rootfs=$STATE/rootfs
tmp=$out.tmp
cleanup() {
  # debootstrap mounts proc/sys in the target; never rm -rf across a mount point.
  if [ -d "$rootfs" ]; then
    findmnt -rn -o TARGET | grep -F "$rootfs/" | sort -r | while read -r m; do umount -l "$m" || true; done || true
    rm -rf --one-file-system "$rootfs"
  fi
  rm -rf "$tmp"
}
trap cleanup EXIT
cleanup
mkdir -p "$rootfs" "$STATE/debs" "$tmp"

m=$(mirror)
log=$STATE/debootstrap.log
echo "vm image: debootstrap $suite (minbase + $pkgs), log: $log"
if ! debootstrap --variant=minbase --include="$pkgs" --cache-dir="$STATE/debs" \
  "$suite" "$rootfs" "$m" >"$log.raw" 2>&1; then
  sed -e "s#$m#<mirror>#g" "$log.raw" >"$log"; rm -f "$log.raw"   # no mirror host in kept logs
  tail -20 "$log" >&2
  exit 1
fi
sed -e "s#$m#<mirror>#g" "$log.raw" >"$log"; rm -f "$log.raw"

r=$rootfs
# The VMs are offline: no apt sources (and no mirror name) in the image.
: >"$r/etc/apt/sources.list"
rm -rf "$r"/var/lib/apt/lists/* "$r"/var/cache/apt/*.bin
echo knode-vm >"$r/etc/hostname"
printf '127.0.0.1 localhost\n::1 localhost ip6-localhost ip6-loopback\n' >"$r/etc/hosts"
printf 'LABEL=knode-vm / ext4 defaults,noatime 0 1\n' >"$r/etc/fstab"

# Root logs in with the lab's key only (no password: the console is for reading, not typing).
ssh-keygen -q -t ed25519 -N '' -C knode-vm -f "$tmp/id_ed25519"
install -d -m 0700 "$r/root/.ssh"
install -m 0600 "$tmp/id_ed25519.pub" "$r/root/.ssh/authorized_keys"
printf 'UseDNS no\nPermitRootLogin prohibit-password\nPasswordAuthentication no\nHostKey /etc/ssh/ssh_host_ed25519_key\n' \
  >"$r/etc/ssh/sshd_config.d/knode-vm.conf"
rm -f "$r"/etc/ssh/ssh_host_*   # made per VM at first boot (ed25519 only: RSA is slow under TCG)
mkdir -p "$r/etc/systemd/system/ssh.service.d"
printf '[Service]\nExecStartPre=\nExecStartPre=/bin/sh -c "test -f /etc/ssh/ssh_host_ed25519_key || ssh-keygen -q -t ed25519 -N \\"\\" -f /etc/ssh/ssh_host_ed25519_key"\nExecStartPre=/usr/sbin/sshd -t\n' \
  >"$r/etc/systemd/system/ssh.service.d/knode-vm.conf"

# Per-VM identity from the kernel command line (systemd.hostname=vmN knode_vm.ip=A/24
# knode_vm.gw=G, and for a VM with a second interface knode_vm.ip2=B/24 knode_vm.gw2=H): one
# image, N VMs. The addresses are networkd's, as on a server configured with systemd-networkd;
# the default route goes to a lab bridge, which has no uplink.
cat >"$r/usr/local/sbin/knode-vm-net" <<'EOF'
#!/bin/sh
# Writes /run/systemd/network/10-knode-vm.network (eth0) and, for a VM with a second
# interface, 11-knode-vm.network (eth1) from knode_vm.* on the kernel command line.
set -eu
ip= gw= ip2= gw2=
for a in $(cat /proc/cmdline); do
  case $a in
  knode_vm.ip=*) ip=${a#*=} ;; knode_vm.gw=*) gw=${a#*=} ;;
  knode_vm.ip2=*) ip2=${a#*=} ;; knode_vm.gw2=*) gw2=${a#*=} ;;
  esac
done
mkdir -p /run/systemd/network
network() { # NAME ADDRESS GATEWAY FILE
  [ -n "$2" ] || return 0
  {
    printf '[Match]\nName=%s\n\n[Network]\nAddress=%s\n' "$1" "$2"
    [ -z "$3" ] || printf 'Gateway=%s\n' "$3"
  } >"/run/systemd/network/$4"
}
network eth0 "$ip" "$gw" 10-knode-vm.network
network eth1 "$ip2" "$gw2" 11-knode-vm.network
EOF
chmod 0755 "$r/usr/local/sbin/knode-vm-net"
cat >"$r/etc/systemd/system/knode-vm-net.service" <<'EOF'
[Unit]
Description=knode VM lab: this VM's address from the kernel command line
DefaultDependencies=no
Before=systemd-networkd.service
After=local-fs.target

[Service]
Type=oneshot
ExecStart=/usr/local/sbin/knode-vm-net
RemainAfterExit=yes

[Install]
WantedBy=systemd-networkd.service
EOF
# resolv.conf names the lab bridge as a server (nothing answers there: the lab is offline).
rm -f "$r/etc/resolv.conf"
printf 'nameserver 10.213.0.1\n' >"$r/etc/resolv.conf"
# The lab share (9p) at /mnt/knode-lab when the VM has one; nofail: a VM boots without it.
mkdir -p "$r/mnt/knode-lab"
printf 'knodelab /mnt/knode-lab 9p trans=virtio,version=9p2000.L,msize=524288,nofail,x-systemd.device-timeout=5s 0 0\n' \
  >>"$r/etc/fstab"

chroot "$r" systemctl enable systemd-networkd.service knode-vm-net.service ssh.service \
  serial-getty@ttyS0.service >/dev/null 2>&1
# Timers and scrubs that only cost CPU in a throwaway VM under emulation.
chroot "$r" systemctl mask e2scrub_reap.service e2scrub_all.timer apt-daily.timer \
  apt-daily-upgrade.timer man-db.timer fstrim.timer >/dev/null 2>&1 || true

# A small initramfs with the drivers root=/dev/vda needs (the 9p modules load from the root).
sed -i 's/^MODULES=.*/MODULES=list/' "$r/etc/initramfs-tools/initramfs.conf"
printf 'virtio_pci\nvirtio_blk\nvirtio_net\next4\n' >>"$r/etc/initramfs-tools/modules"
chroot "$r" update-initramfs -u -k all >/dev/null
chroot "$r" apt-get clean
cp -L "$r/vmlinuz" "$tmp/vmlinuz"
cp -L "$r/initrd.img" "$tmp/initrd.img"

# The disk without mounting anything: mkfs.ext4 -d fills the file system from the directory.
truncate -s "$size" "$tmp/disk.raw"
mkfs.ext4 -q -F -L knode-vm -d "$r" "$tmp/disk.raw"
qemu-img convert -f raw -O qcow2 "$tmp/disk.raw" "$tmp/disk.qcow2"
rm -f "$tmp/disk.raw"
rm -rf "$out"
mv "$tmp" "$out"
echo "vm image: $(du -sh "$out/disk.qcow2" | cut -f1) in $out"
