#!/usr/bin/env bash
# A test-bed virtual machine with its own Debian kernel: the one place where
# the kernel NFS client and server run (containers share this machine's
# kernel, which has neither). Built from Debian packages only, booted with
# QEMU's software emulation (TCG: guests hang under KVM on these machines),
# and reached the way a real host is: Ansible over SSH, as a non-root user
# with sudo, through QEMU's user-mode network on the loopback address.
#
#   testbed/vm.sh build              build the image (cached by a tag derived
#                                    from this recipe); prints its directory
#   testbed/vm.sh start NAME PORT [FWD...]
#                                    boot a throw-away copy of the image as
#                                    host NAME (its host name too), SSH on 127.0.0.1:PORT; each FWD is
#                                    one more QEMU hostfwd (e.g.
#                                    tcp:172.17.0.1:12049-:2049); waits for SSH
#   testbed/vm.sh stop NAME          power it off (then kill) and remove it
#   testbed/vm.sh ssh NAME [CMD...]  a shell (or CMD) on it as the admin user
#
# Environment:
#   DEBIAN_MIRROR   mirror for debootstrap (see lib.sh)
#   PWG_VM_DIR      where the images are kept (default: .cache/vm in the
#                   project)
#   PWG_VM_RUN_DIR  where a running machine keeps its disk overlay, key and
#                   console log, one directory per name (default /tmp/pwg-vm:
#                   a fixed path, so an inventory can name the key)
#   PWG_VM_MEMORY   memory of a machine in MiB (default 1024)
#   PWG_VM_BOOT_TIMEOUT
#                   seconds to wait for SSH after starting (default 600)
set -euo pipefail
# shellcheck source=testbed/lib.sh
. "$(dirname "$0")/lib.sh"

suite=bookworm
# udev and kmod load the virtio and NFS modules; netbase gives
# /etc/protocols, without which mount.nfs finds no "tcp"; openssh-server, sudo and
# python3 make it an Ansible host like any other.
packages=systemd,systemd-sysv,udev,dbus,kmod,netbase,linux-image-cloud-amd64,initramfs-tools,openssh-server,sudo,python3,python3-apt,iproute2,procps,ca-certificates,gnupg
admin=pwg
vm_dir=${PWG_VM_DIR:-$PROJECT_DIR/.cache/vm}
run_dir=${PWG_VM_RUN_DIR:-/tmp/pwg-vm}
host_packages=(qemu-system-x86 qemu-utils debootstrap debian-archive-keyring e2fsprogs openssh-client)

recipe_tag() {
  { sed -n '/^suite=/,/^admin=/p' "$0"; declare -f debootstrap_tree build_tree; } | sha256sum | cut -c1-12
}

# build_tree ROOTFS PUBKEY: everything done to the tree after debootstrap.
build_tree() {
  local rootfs=$1 pubkey=$2
  echo pwg-vm | as_root tee "$rootfs/etc/hostname" >/dev/null
  printf '127.0.0.1\tlocalhost\n127.0.1.1\tpwg-vm\n' | as_root tee "$rootfs/etc/hosts" >/dev/null
  echo '/dev/vda / ext4 rw,errors=remount-ro 0 1' | as_root tee "$rootfs/etc/fstab" >/dev/null
  # QEMU's user-mode network: DHCP from 10.0.2.2, DNS at 10.0.2.3.
  as_root tee "$rootfs/etc/systemd/network/10-virtio.network" >/dev/null <<'NETWORK'
[Match]
Name=en* eth*

[Network]
DHCP=ipv4
NETWORK
  echo 'nameserver 10.0.2.3' | as_root tee "$rootfs/etc/resolv.conf" >/dev/null
  as_root chroot "$rootfs" systemctl enable systemd-networkd.service systemd-networkd-wait-online.service >/dev/null 2>&1
  # The admin user Ansible connects as: a key, sudo without a password, no password login.
  as_root chroot "$rootfs" useradd --create-home --shell /bin/bash "$admin"
  as_root install -d -m 0700 -o 1000 -g 1000 "$rootfs/home/$admin/.ssh"
  as_root install -m 0600 -o 1000 -g 1000 "$pubkey" "$rootfs/home/$admin/.ssh/authorized_keys"
  echo "$admin ALL=(ALL:ALL) NOPASSWD: ALL" | as_root tee "$rootfs/etc/sudoers.d/$admin" >/dev/null
  as_root chmod 0440 "$rootfs/etc/sudoers.d/$admin"
  printf 'PasswordAuthentication no\nPermitRootLogin no\nUseDNS no\n' \
    | as_root tee "$rootfs/etc/ssh/sshd_config.d/pwg.conf" >/dev/null
  # Each booted copy gets its own machine id.
  as_root chroot "$rootfs" apt-get clean
  as_root rm -rf "$rootfs"/var/lib/apt/lists/*
  # An old mtime, so that apt's cache_valid_time sees no fresh package lists.
  as_root touch -d @0 "$rootfs/var/lib/apt/lists"
  as_root truncate -s 0 "$rootfs/etc/machine-id"
}

build() {
  local tag image rootfs start key
  tag=$(recipe_tag)
  image="$vm_dir/image-$tag"
  if [ -f "$image/disk.img" ]; then
    log "vm image: $image (cached)"
    echo "$image"
    return
  fi
  apt_install "${host_packages[@]}"
  start=$(date +%s)
  rootfs=$(mktemp -d /var/tmp/pwg-vm-rootfs.XXXXXX)
  as_root mkdir -p "$vm_dir"
  as_root rm -rf "$image.tmp"
  as_root mkdir -p "$image.tmp"
  # shellcheck disable=SC2064 # expand now: the paths are local
  trap "as_root rm -rf '$rootfs' '$image.tmp'" EXIT
  log "vm image: building $image with debootstrap $(debian_mirror)"
  debootstrap_tree "$rootfs" "$suite" "$packages"
  # A key made for this image only; the public half goes into the image.
  key="$image.tmp/id_ed25519"
  as_root ssh-keygen -q -t ed25519 -N '' -C "pwg-vm-$tag" -f "$key"
  build_tree "$rootfs" "$key.pub"
  as_root cp -L "$rootfs/vmlinuz" "$image.tmp/vmlinuz"
  as_root cp -L "$rootfs/initrd.img" "$image.tmp/initrd.img"
  as_root ssh-keygen -l -f "$rootfs/etc/ssh/ssh_host_ed25519_key.pub" >"$image.tmp/host_key.txt"
  as_root sed 's/^/[127.0.0.1]:* /' "$rootfs/etc/ssh/ssh_host_ed25519_key.pub" >"$image.tmp/known_hosts.template"
  # mkfs.ext4 -d fills the file system from the tree: no loop mount needed.
  as_root mkfs.ext4 -q -L pwg-vm -d "$rootfs" "$image.tmp/disk.img" 4G >/dev/null
  # The image belongs to whoever builds it, who boots it without root.
  as_root chown -R "$(id -u):$(id -g)" "$image.tmp"
  as_root chmod 0600 "$image.tmp/id_ed25519"
  as_root mv "$image.tmp" "$image"
  trap - EXIT
  as_root rm -rf "$rootfs"
  log "vm image: built $image in $(( $(date +%s) - start )) s"
  echo "$image"
}

machine_dir() { echo "$run_dir/$1"; }

start() {
  local name=$1 port=$2 image dir fwd netdev deadline
  shift 2
  [[ "$name" =~ ^[a-z0-9-]+$ ]] || die "machine name must be lower-case letters, digits and dashes: $name"
  [[ "$port" =~ ^[0-9]+$ ]] || die "port must be a number: $port"
  image=$(build)
  dir=$(machine_dir "$name")
  if [ -f "$dir/qemu.pid" ] && kill -0 "$(cat "$dir/qemu.pid")" 2>/dev/null; then
    die "machine $name is already running (testbed/vm.sh stop $name)"
  fi
  # Booting needs no root (software emulation, user-mode network): the
  # machine's files belong to whoever runs it, in a directory nobody else owns.
  mkdir -p -m 0700 "$run_dir"
  [ -O "$run_dir" ] || die "$run_dir belongs to someone else"
  rm -rf "$dir"
  mkdir -p "$dir"
  # A copy-on-write overlay: the image stays as built, each run starts clean.
  qemu-img create -q -f qcow2 -F raw -b "$image/disk.img" "$dir/disk.qcow2"
  install -m 0600 "$image/id_ed25519" "$dir/id_ed25519"
  sed "s/\\*/$port/" "$image/known_hosts.template" >"$dir/known_hosts"
  echo "$port" >"$dir/port"
  netdev="user,id=net0,hostfwd=tcp:127.0.0.1:$port-:22"
  for fwd in "$@"; do netdev+=",hostfwd=$fwd"; done
  log "vm $name: booting (SSH on 127.0.0.1:$port; serial console in $dir/console.log)"
  qemu-system-x86_64 -accel tcg -machine q35 -cpu max -smp 1 -m "${PWG_VM_MEMORY:-1024}" \
    -kernel "$image/vmlinuz" -initrd "$image/initrd.img" \
    -append "root=/dev/vda rw console=ttyS0 systemd.hostname=$name systemd.show_status=false" \
    -drive "file=$dir/disk.qcow2,if=virtio,format=qcow2" \
    -netdev "$netdev" -device virtio-net-pci,netdev=net0 \
    -display none -serial "file:$dir/console.log" -monitor none \
    -daemonize -pidfile "$dir/qemu.pid"
  wait_ssh "$name"
}

ssh_opts() {  # ssh_opts NAME: the options that reach machine NAME
  local dir
  dir=$(machine_dir "$1")
  echo "-i $dir/id_ed25519 -p $(cat "$dir/port") -o UserKnownHostsFile=$dir/known_hosts -o StrictHostKeyChecking=yes -o ConnectTimeout=10 -o BatchMode=yes $admin@127.0.0.1"
}

wait_ssh() {
  local name=$1 start deadline
  start=$(date +%s)
  deadline=$(( start + ${PWG_VM_BOOT_TIMEOUT:-600} ))
  # shellcheck disable=SC2046 # the options are words
  until ssh $(ssh_opts "$name") true 2>/dev/null; do
    if [ "$(date +%s)" -ge "$deadline" ]; then
      tail -n 30 "$(machine_dir "$name")/console.log" >&2 || true
      die "vm $name: no SSH after ${PWG_VM_BOOT_TIMEOUT:-600} s"
    fi
    sleep 3
  done
  log "vm $name: SSH answers after $(( $(date +%s) - start )) s"
}

stop() {
  local name=$1 dir pid i
  dir=$(machine_dir "$name")
  [ -d "$dir" ] || return 0
  if [ -f "$dir/qemu.pid" ] && pid=$(cat "$dir/qemu.pid") && kill -0 "$pid" 2>/dev/null; then
    # shellcheck disable=SC2046
    ssh $(ssh_opts "$name") sudo systemctl poweroff >/dev/null 2>&1 || true
    for i in $(seq 60); do kill -0 "$pid" 2>/dev/null || break; sleep 1; done
    kill "$pid" 2>/dev/null || true
  fi
  rm -rf "$dir"
  log "vm $name: stopped"
}

case "${1:-}" in
  build) build ;;
  start) [ $# -ge 3 ] || die "usage: testbed/vm.sh start NAME PORT [FWD...]"; shift; start "$@" ;;
  stop) [ $# -eq 2 ] || die "usage: testbed/vm.sh stop NAME"; stop "$2" ;;
  wait) [ $# -eq 2 ] || die "usage: testbed/vm.sh wait NAME"; wait_ssh "$2" ;;
  ssh) [ $# -ge 2 ] || die "usage: testbed/vm.sh ssh NAME [CMD...]"; name=$2; shift 2
       # shellcheck disable=SC2046
       exec ssh $(ssh_opts "$name") "$@" ;;
  *) die "usage: testbed/vm.sh build | start NAME PORT [FWD...] | stop NAME | wait NAME | ssh NAME [CMD...]" ;;
esac
