#!/usr/bin/env bash
# setup.sh: install what cvedge needs to build, run and test on Debian 12 or Raspberry Pi OS.
#
#   scripts/setup.sh            install what is missing; does nothing when all is there
#   scripts/setup.sh --check    report what is missing, install nothing, exit 1 if anything is
#
# It installs:
#   - Debian packages: g++, pkg-config, libopencv-dev (gocv), libturbojpeg0-dev (camera/turbojpeg.go
#     decodes MJPEG frames with it), gstreamer1.0-plugins-base
#     (GStreamer camera pipelines: videoconvert, appsink, videotestsrc),
#     gstreamer1.0-plugins-good and gstreamer1.0-libav (RTSP cameras through rtspsrc,
#     rtsp.transport auto, tcp or udp: rtspsrc, the H.264 decoder), the RTSP test server's python3-gi, python3-gst-1.0,
#     gir1.2-gst-rtsp-server-1.0 and gstreamer1.0-plugins-bad (openh264enc), mosquitto and
#     mosquitto-clients (tests and watching the MQTT output), gstreamer1.0-tools (gst-launch-1.0
#     makes the 1080p bench video, scripts/video-1080p.sh), systemd (systemd-analyze checks
#     the unit), libaravis-0.8-0 (GenICam cameras: the agent loads libaravis and reads the
#     camera's stream from it), aravis-tools
#     and iproute2 (the GenICam test runs arv-fake-gv-camera-0.8, a fake GigE Vision camera, in
#     a network namespace of its own, set up with ip), chromium (the operator station's tests
#     drive it headless); npm only when the onnxruntime library must be fetched; on amd64,
#     gcc-aarch64-linux-gnu, g++-aarch64-linux-gnu and qemu-user-static (make deb ARCH=arm64
#     cross-builds the arm64 package and check-deb.sh runs it under qemu-aarch64-static).
#   - the onnxruntime 1.24.1 shared library for this machine (amd64 or arm64) into lib/, taken
#     from the npm package onnxruntime-node@1.24.1 and checked against a pinned SHA-256.
#
# A machine that already has an onnxruntime 1.24.x library (a Jetson GPU build, say) points to
# it and skips the fetch:
#   CVEDGE_ONNXRUNTIME_LIBRARY=/usr/lib/libonnxruntime.so.1.24.1 scripts/setup.sh
# The agent reads the same variable at run time (see docs/operations.md).
#
# Runs as root, or as a user with sudo. Safe to run again.
set -euo pipefail

ORT_VERSION=1.24.1
declare -A ORT_SHA256=(
  [x64]=53ef1ac028dd1b05554b8da28d9159eb3876f99868193d2aaa6e67f0243c23d4
  [arm64]=7954e8bdedb497f830c6a679e818d98399b7f4d81ade1126c3e0be74d28111ab
)
PACKAGES=(g++ pkg-config libopencv-dev gstreamer1.0-plugins-base mosquitto mosquitto-clients systemd
  gstreamer1.0-plugins-good gstreamer1.0-libav python3-gi python3-gst-1.0 gir1.2-gst-rtsp-server-1.0
  libaravis-0.8-0 gstreamer1.0-plugins-bad aravis-tools iproute2 chromium gstreamer1.0-tools
  libturbojpeg0-dev)

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
libdir="$root/lib"
check_only=false
[[ "${1:-}" == "--check" ]] && check_only=true

say() { printf 'setup: %s\n' "$*"; }
die() { printf 'setup: error: %s\n' "$*" >&2; exit 1; }

as_root() {
  if [[ $(id -u) -eq 0 ]]; then "$@"
  elif command -v sudo >/dev/null; then sudo "$@"
  else die "need root to run '$*': run this script as root or install sudo"
  fi
}

missing_packages() {
  local p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q '^install ok installed$' || printf '%s\n' "$p"
  done
}

apt_updated=false
apt_install() {
  if ! $apt_updated; then
    say "apt-get update"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q >/dev/null
    apt_updated=true
  fi
  say "installing: $*"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@" >/dev/null
}

# --- Go ---------------------------------------------------------------------------------
# The version go.mod's go line asks for is the one needed. GOTOOLCHAIN=local (here and in the
# Makefile): an older Go would otherwise try to download a newer toolchain, which an offline
# box cannot, with an error that does not say what to do.
export GOTOOLCHAIN=${GOTOOLCHAIN:-local}
GO_MIN=$(sed -n 's/^go \([0-9][0-9.]*\)$/\1/p' "$root/go.mod")
[[ -n "$GO_MIN" ]] || die "go.mod has no 'go' line: restore it from git"
command -v go >/dev/null || die "Go $GO_MIN or newer is needed and 'go' is not on PATH: install it from https://go.dev/dl/ (Debian 12's golang package is too old)"
go_version=$(go env GOVERSION 2>/dev/null | sed 's/^go//') || true
[[ -n "$go_version" ]] || die "'go env GOVERSION' failed: check the Go on PATH ($(command -v go)); cvedge needs Go $GO_MIN or newer (https://go.dev/dl/)"
if [[ "$(printf '%s\n%s\n' "$GO_MIN" "$go_version" | sort -V | head -n1)" != "$GO_MIN" ]]; then
  die "Go $go_version is too old: cvedge needs Go $GO_MIN or newer (go.mod's go line). Install it from https://go.dev/dl/ (an offline box: copy the go$GO_MIN.linux-$(uname -m | sed 's/x86_64/amd64/;s/aarch64/arm64/').tar.gz there and unpack it into /usr/local), then put /usr/local/go/bin first on PATH"
fi

# --- Debian packages ----------------------------------------------------------------------
command -v dpkg-query >/dev/null || die "this script expects a Debian-based system (Debian 12, Raspberry Pi OS, Ubuntu 24.04)"
# the arm64 package's cross build and its emulated checks, on amd64 machines
if [[ "$(dpkg --print-architecture)" == amd64 ]]; then
  PACKAGES+=(gcc-aarch64-linux-gnu g++-aarch64-linux-gnu qemu-user-static)
fi
mapfile -t need < <(missing_packages "${PACKAGES[@]}")
if ((${#need[@]})); then
  $check_only && { say "missing packages: ${need[*]}"; exit 1; }
  apt_install "${need[@]}"
else
  say "packages present: ${PACKAGES[*]}"
fi
# npm fetches the arm64 onnxruntime for the arm64 package (scripts/arm64-sysroot.sh), also
# when this machine's own library is there already
if [[ "$(dpkg --print-architecture)" == amd64 && ! -f "$root/.cache/arm64/lib/libonnxruntime.so.1.24.1" ]] && ! command -v npm >/dev/null; then
  $check_only && { say "missing: npm (the arm64 onnxruntime of make deb ARCH=arm64)"; exit 1; }
  apt_install npm
fi
pkg-config --exists opencv4 || die "pkg-config cannot find opencv4 although libopencv-dev is installed; check 'pkg-config --modversion opencv4'"

# --- onnxruntime --------------------------------------------------------------------------
if [[ -n "${CVEDGE_ONNXRUNTIME_LIBRARY:-}" ]]; then
  [[ -f "$CVEDGE_ONNXRUNTIME_LIBRARY" ]] || die "CVEDGE_ONNXRUNTIME_LIBRARY=$CVEDGE_ONNXRUNTIME_LIBRARY does not exist: point it at libonnxruntime.so.$ORT_VERSION, or unset it to fetch the library into lib/"
  say "onnxruntime: using $CVEDGE_ONNXRUNTIME_LIBRARY (CVEDGE_ONNXRUNTIME_LIBRARY); nothing fetched"
  exit 0
fi

case "$(uname -m)" in
  x86_64 | amd64) arch=x64 ;;
  aarch64 | arm64) arch=arm64 ;;
  *) die "no onnxruntime $ORT_VERSION build for $(uname -m) in onnxruntime-node: build onnxruntime yourself and set CVEDGE_ONNXRUNTIME_LIBRARY" ;;
esac
want=${ORT_SHA256[$arch]}
target="$libdir/libonnxruntime.so.$ORT_VERSION"

if [[ -f "$target" ]] && [[ "$(sha256sum "$target" | cut -d' ' -f1)" == "$want" ]]; then
  say "onnxruntime $ORT_VERSION present: $target"
else
  $check_only && { say "onnxruntime $ORT_VERSION missing: $target"; exit 1; }
  if ! command -v npm >/dev/null; then
    apt_install npm
  fi
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  say "fetching onnxruntime-node@$ORT_VERSION with npm pack"
  (cd "$tmp" && npm pack --silent "onnxruntime-node@$ORT_VERSION" >/dev/null) ||
    die "npm pack onnxruntime-node@$ORT_VERSION failed: check access to the npm registry, or set CVEDGE_ONNXRUNTIME_LIBRARY to a library you already have"
  member="package/bin/napi-v6/linux/$arch/libonnxruntime.so.1"
  tar -xzf "$tmp"/onnxruntime-node-"$ORT_VERSION".tgz -C "$tmp" "$member"
  got=$(sha256sum "$tmp/$member" | cut -d' ' -f1)
  [[ "$got" == "$want" ]] || die "onnxruntime library from npm has SHA-256 $got, expected $want: refusing to install it"
  mkdir -p "$libdir"
  install -m 0644 "$tmp/$member" "$target.tmp"
  mv -f "$target.tmp" "$target"
  say "installed $target"
fi
ln -sfn "libonnxruntime.so.$ORT_VERSION" "$libdir/libonnxruntime.so.1"
ln -sfn "libonnxruntime.so.1" "$libdir/libonnxruntime.so"
