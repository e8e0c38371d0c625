#!/usr/bin/env bash
# Create the project virtualenv (.venv) with the pinned tooling of
# requirements-tools.txt and the app with its test dependencies. Re-installs
# only when a pin file changes.
set -euo pipefail
# shellcheck source=testbed/lib.sh
. "$(dirname "$0")/lib.sh"

venv=${PWG_VENV:-$PROJECT_DIR/.venv}
python=${PYTHON:-python3}

command -v "$python" >/dev/null 2>&1 || apt_install python3
"$python" -c 'import venv, ensurepip' 2>/dev/null || apt_install python3-venv

stamp="$venv/.pwg-installed"
# Mitogen's strategy plugins (ansible.cfg, .config/molecule/config.yml) at a
# path that does not depend on the Python version inside the venv.
link_mitogen() {
  local dir
  dir=$("$venv/bin/python" -c 'import os, ansible_mitogen.plugins.strategy as s; print(os.path.dirname(s.__file__))')
  ln -sfn "$dir" "$venv/ansible-mitogen-strategy"
}
want=$(for f in requirements-tools.txt app/pyproject.toml app/requirements.txt; do
         if [ -f "$PROJECT_DIR/$f" ]; then cat "$PROJECT_DIR/$f"; fi
       done | sha256sum | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  link_mitogen
  log "virtualenv: $venv (up to date)"
  exit 0
fi

start=$(date +%s)
[ -x "$venv/bin/python" ] || "$python" -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --upgrade pip
"$venv/bin/python" -m pip install --quiet -r "$PROJECT_DIR/requirements-tools.txt"
if [ -f "$PROJECT_DIR/app/requirements.txt" ]; then
  "$venv/bin/python" -m pip install --quiet -r "$PROJECT_DIR/app/requirements.txt"
fi
"$venv/bin/python" -m pip install --quiet --no-deps -e "$PROJECT_DIR/app"
(cd "$PROJECT_DIR" && "$venv/bin/ansible-galaxy" collection install -r requirements.yml >/dev/null)
link_mitogen
echo "$want" > "$stamp"
log "virtualenv: $venv installed in $(( $(date +%s) - start )) s"
