#!/usr/bin/env bash
# Make sure a docker engine answers: use the running one (a desktop with docker),
# otherwise install Debian's docker.io and start dockerd in the background
# (machines without systemd as PID 1 cannot start docker.service).
set -euo pipefail
# shellcheck source=testbed/lib.sh
. "$(dirname "$0")/lib.sh"

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
