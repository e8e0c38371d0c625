#!/usr/bin/env bash
# Build the wheelhouse the hosts install the app from, as one tar file.
#   build-wheelhouse.sh PYTHON APP_SOURCE OUT_TAR TARGET_PYTHON_VERSION PLATFORMS
# PYTHON runs pip on the control host. Binary wheels are fetched for the hosts'
# interpreter and platforms (comma-separated), so they fit the hosts whatever
# the control host runs; packages published only as source, and the app, are
# built into wheels here. The tar holds requirements.txt and the wheels.
set -euo pipefail
python=$1 src=$2 out=$3 pyver=$4 platforms=$5

mkdir -p "$(dirname "$out")"
tmp=$(mktemp -d "${out}.partial.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
mkdir "$tmp/wheels" "$tmp/src"

# Build from a clean copy: building in place leaves build/ and egg-info behind.
cp -r "$src/pyproject.toml" "$src/requirements.txt" "$src/src" "$tmp/src/"
[ ! -f "$src/README.md" ] || cp "$src/README.md" "$tmp/src/"
find "$tmp/src" \( -name '*.egg-info' -o -name __pycache__ \) -prune -exec rm -rf {} +

platform_args=()
IFS=, read -r -a plats <<<"$platforms"
for p in "${plats[@]}"; do platform_args+=(--platform "$p"); done
abi="cp${pyver/./}"

"$python" -m pip wheel --quiet --no-deps --wheel-dir "$tmp/wheels" "$tmp/src"
"$python" -m pip wheel --quiet --no-deps --wheel-dir "$tmp/wheels" -r "$src/requirements.txt"
"$python" -m pip download --quiet --no-deps --dest "$tmp/wheels" --find-links "$tmp/wheels" \
  --only-binary :all: --python-version "$pyver" --implementation cp --abi "$abi" --abi abi3 --abi none \
  "${platform_args[@]}" -r "$src/requirements.txt"
# Keep only what the hosts can use: drop wheels built for another interpreter.
find "$tmp/wheels" -name '*.whl' ! -name "*-${abi}-*" ! -name '*-abi3-*' ! -name '*-none-*' -delete
cp "$src/requirements.txt" "$tmp/wheels/requirements.txt"
tar -C "$tmp/wheels" --sort=name --owner=0 --group=0 --mtime=@0 -cf "$tmp/wheelhouse.tar" .
mv "$tmp/wheelhouse.tar" "$out"
