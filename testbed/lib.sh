# shellcheck shell=bash
# Shared helpers of the local container test bed. Sourced, never executed.

TESTBED_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
PROJECT_DIR=$(dirname "$TESTBED_DIR")
export TESTBED_DIR PROJECT_DIR

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# Run as root or through sudo.
as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

apt_updated=
apt_install() {
  local missing=() pkg
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ -z "$apt_updated" ]; then
    as_root apt-get update -qq
    apt_updated=1
  fi
  log "installing ${missing[*]}"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# The Debian mirror for debootstrap: DEBIAN_MIRROR, else the one this
# machine's apt uses, else nothing (debootstrap's own default).
debian_mirror() {
  if [ -n "${DEBIAN_MIRROR:-}" ]; then
    echo "$DEBIAN_MIRROR"
    return
  fi
  grep -hosE '^(URIs:|deb)[[:space:]]+[^[:space:]]+/debian/?([[:space:]]|$)' \
    /etc/apt/sources.list.d/*.sources /etc/apt/sources.list.d/*.list /etc/apt/sources.list 2>/dev/null \
    | awk '{print $2}' | head -n 1 || true
}

# debootstrap_tree ROOTFS SUITE PACKAGES: a minimal Debian tree with PACKAGES
# (comma-separated), whose apt sources name the same mirror, with its updates
# and security suites. The image recipes hash this function's text.
debootstrap_tree() {
  local rootfs=$1 suite=$2 packages=$3 mirror
  mirror=$(debian_mirror)
  as_root debootstrap --variant=minbase --include="$packages" "$suite" "$rootfs" ${mirror:+"$mirror"} >/dev/null
  if [ -n "$mirror" ]; then
    as_root tee "$rootfs/etc/apt/sources.list" >/dev/null <<SOURCES
deb $mirror $suite main
deb $mirror $suite-updates main
deb ${mirror%/}-security $suite-security main
SOURCES
  fi
}
