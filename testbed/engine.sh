#!/usr/bin/env bash
# Make sure a docker engine answers: use the running one (a desktop with docker),
# otherwise install Debian's docker.io and start dockerd in the background
# (machines without systemd as PID 1 cannot start docker.service).
set -euo pipefail
# shellcheck source=testbed/lib.sh
. "$(dirname "$0")/lib.sh"

# Every systemd container takes inotify instances; with the kernel's default
# of 128 per user, systemd in the twentieth or so container exits at once
# (status 255, no log).
raise_sysctl() {
  local key=$1 want=$2 have
  have=$(sysctl -n "$key" 2>/dev/null || echo 0)
  if [ "$have" -lt "$want" ]; then
    as_root sysctl -q -w "$key=$want" || log "warning: could not raise $key to $want (now $have)"
  fi
}
raise_sysctl fs.inotify.max_user_instances 8192
raise_sysctl fs.inotify.max_user_watches 524288

if docker info >/dev/null 2>&1; then
  log "docker engine: running ($(docker version --format '{{.Server.Version}}'))"
  exit 0
fi

command -v dockerd >/dev/null 2>&1 || apt_install docker.io

if [ -d /run/systemd/system ] && as_root systemctl start docker 2>/dev/null; then
  log "docker engine: started docker.service"
else
  log "docker engine: starting dockerd in the background (log: /var/log/dockerd.log)"
  as_root sh -c 'nohup dockerd >/var/log/dockerd.log 2>&1 &'
fi

for _ in $(seq 60); do
  if docker info >/dev/null 2>&1; then
    log "docker engine: running ($(docker version --format '{{.Server.Version}}'))"
    exit 0
  fi
  sleep 1
done
die "the docker engine did not answer within 60 s; see /var/log/dockerd.log"
