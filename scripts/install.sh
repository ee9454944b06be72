#!/usr/bin/env bash
# install.sh: install cvedge as a systemd service on this machine: the binary, the
# onnxruntime library, the unit and the sample config. Safe to run again: files that are
# already up to date are left alone, and an existing /etc/cvedge/cvedge.yaml is never
# overwritten.
#
#   make build && scripts/install.sh          # as root, or through sudo
#   PREFIX=/opt/cvedge scripts/install.sh     # binary and library elsewhere (default /usr/local)
#   DESTDIR=/tmp/pkgroot scripts/install.sh   # stage into a folder: no user, no systemctl
#
# It uses bin/cvedge (make build; BIN= names another) and the library from lib/
# (scripts/setup.sh), or the one CVEDGE_ONNXRUNTIME_LIBRARY names.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PREFIX=${PREFIX:-/usr/local}
DESTDIR=${DESTDIR:-}
ORT_VERSION=1.24.1
say() { printf 'install: %s\n' "$*"; }
die() { printf 'install: error: %s\n' "$*" >&2; exit 1; }

if [[ -z "$DESTDIR" && $(id -u) -ne 0 ]]; then
  command -v sudo >/dev/null || die "run as root (or install sudo)"
  exec sudo --preserve-env=PREFIX,BIN,CVEDGE_ONNXRUNTIME_LIBRARY "$0" "$@"
fi

bin=${BIN:-$root/bin/cvedge}
[[ -x "$bin" ]] || die "$bin is missing: run 'make build' first"
lib=${CVEDGE_ONNXRUNTIME_LIBRARY:-$root/lib/libonnxruntime.so.$ORT_VERSION}
[[ -f "$lib" ]] || die "$lib is missing: run scripts/setup.sh first, or set CVEDGE_ONNXRUNTIME_LIBRARY"

# place SRC DEST MODE: copy when DEST differs, and say which.
place() {
  local src=$1 dest=$DESTDIR$2 mode=$3
  if [[ -f "$dest" ]] && cmp -s "$src" "$dest"; then
    say "unchanged $2"
  else
    install -D -m "$mode" "$src" "$dest"
    say "installed $2"
  fi
}

place "$bin" "$PREFIX/bin/cvedge" 0755
place "$lib" "$PREFIX/lib/cvedge/libonnxruntime.so.$ORT_VERSION" 0644

unit=$(mktemp)
trap 'rm -f "$unit"' EXIT
sed "s#^ExecStart=/usr/bin/cvedge #ExecStart=$PREFIX/bin/cvedge #" "$root/configs/cvedge.service" > "$unit"
place "$unit" /etc/systemd/system/cvedge.service 0644
# the Jetson drop-in (GPU and CSI camera devices; docs/operations.md, "Jetson"), in use on a Jetson
place "$root/configs/systemd/jetson.conf" "$PREFIX/share/cvedge/systemd/jetson.conf" 0644
if [[ -e /etc/nv_tegra_release ]]; then
  place "$root/configs/systemd/jetson.conf" /etc/systemd/system/cvedge.service.d/jetson.conf 0644
fi

if [[ -f "$DESTDIR/etc/cvedge/cvedge.yaml" ]]; then
  say "kept /etc/cvedge/cvedge.yaml (yours; the current sample is $PREFIX/share/cvedge/cvedge.yaml)"
else
  install -D -m 0640 "$root/configs/cvedge.yaml" "$DESTDIR/etc/cvedge/cvedge.yaml"
  say "installed /etc/cvedge/cvedge.yaml (a sample: edit the cameras and models)"
fi
place "$root/configs/cvedge.yaml" "$PREFIX/share/cvedge/cvedge.yaml" 0644

if [[ -n "$DESTDIR" ]]; then
  say "staged into $DESTDIR; no user or systemd changes"
  exit 0
fi
if ! getent passwd cvedge >/dev/null; then
  useradd --system --user-group --home-dir /var/lib/cvedge --no-create-home --shell /usr/sbin/nologin cvedge
  say "created system user cvedge"
else
  say "user cvedge exists"
fi
getent group video >/dev/null && usermod -aG video cvedge
chgrp cvedge /etc/cvedge/cvedge.yaml
if [[ -d /run/systemd/system ]]; then
  systemctl daemon-reload
  say "systemd reloaded; check the config, then: sudo systemctl enable --now cvedge"
else
  say "systemd is not running here; start it by hand: $PREFIX/bin/cvedge run --config /etc/cvedge/cvedge.yaml"
fi
"$PREFIX/bin/cvedge" config check --config /etc/cvedge/cvedge.yaml >/dev/null 2>&1 ||
  say "note: /etc/cvedge/cvedge.yaml does not pass 'cvedge config check' yet: edit it before starting the service"
