#!/usr/bin/env bash
# Build the Debian 12 systemd base image of the test bed from Debian packages
# (there is no container registry to pull from). The tag is derived from the
# recipe, so the image is rebuilt only when the recipe changes; the current
# recipe's image is also tagged ":latest", which the molecule scenarios use.
#
# Environment:
#   DEBIAN_MIRROR   mirror for debootstrap (default: the Debian mirror this
#                   machine's apt uses, else debootstrap's own default)
#   PWG_IMAGE_REPO  image name (default: pywps-gridengine/debian12-systemd)
set -euo pipefail
# shellcheck source=testbed/lib.sh
. "$(dirname "$0")/lib.sh"

repo=${PWG_IMAGE_REPO:-pywps-gridengine/debian12-systemd}
suite=bookworm
packages=systemd,systemd-sysv,dbus,python3,python3-apt,sudo,iproute2,procps,ca-certificates,gnupg

# Extra certificate authorities this machine trusts (e.g. a TLS-inspecting
# proxy): the containers must trust them too, or pip cannot reach its index.
mapfile -t extra_cas < <(find /usr/local/share/ca-certificates -name '*.crt' -type f 2>/dev/null | sort)

recipe_hash=$( {
  cat "$0"
  declare -f debootstrap_tree
  echo "$suite $packages"
  for ca in "${extra_cas[@]}"; do sha256sum "$ca"; done
} | sha256sum | cut -c1-12)
image="$repo:$recipe_hash"

if docker image inspect "$image" >/dev/null 2>&1; then
  docker tag "$image" "$repo:latest"
  log "base image: $image (cached)"
  echo "$image"
  exit 0
fi

apt_install debootstrap debian-archive-keyring

rootfs=$(mktemp -d /var/tmp/pwg-rootfs.XXXXXX)
trap 'as_root rm -rf "$rootfs"' EXIT
log "base image: building $image with debootstrap $(debian_mirror)"
start=$(date +%s)
debootstrap_tree "$rootfs" "$suite" "$packages"
for ca in "${extra_cas[@]}"; do
  as_root install -m 0644 "$ca" "$rootfs/usr/local/share/ca-certificates/"
done
as_root chroot "$rootfs" update-ca-certificates >/dev/null 2>&1
# pip's own bundle ignores the system store: point pip at it.
printf '[global]\ncert = /etc/ssl/certs/ca-certificates.crt\n' | as_root tee "$rootfs/etc/pip.conf" >/dev/null
# Units that make no sense in a container.
for unit in getty.target console-getty.service systemd-logind.service \
            systemd-remount-fs.service sys-kernel-debug.mount sys-kernel-tracing.mount; do
  as_root ln -sf /dev/null "$rootfs/etc/systemd/system/$unit"
done
as_root chroot "$rootfs" apt-get clean
as_root rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/etc/machine-id
# An old mtime, so that apt's cache_valid_time sees no fresh package lists.
as_root touch -d @0 "$rootfs/var/lib/apt/lists"
as_root touch "$rootfs/etc/machine-id"

as_root tar -C "$rootfs" -c . | docker import \
  -c 'CMD ["/lib/systemd/systemd"]' \
  -c 'ENV container=docker' - "$image" >/dev/null
docker tag "$image" "$repo:latest"
log "base image: built $image in $(( $(date +%s) - start )) s"
echo "$image"
