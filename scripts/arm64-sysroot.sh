#!/usr/bin/env bash
# arm64-sysroot.sh: the Debian 12 (bookworm) arm64 files that make deb ARCH=arm64 builds against
# and that qemu runs the arm64 binary with, made on an amd64 machine without installing any
# arm64 package.
#
#   scripts/arm64-sysroot.sh    make .cache/arm64/sysroot and .cache/arm64/lib if missing; print the sysroot
#
# The cgo flags of the build against it come from scripts/opencv-flags.sh SYSROOT, as for the
# native build.
#
# The sysroot holds the OpenCV modules cvedge links (their -dev packages: headers and .so links),
# every library they need at run time, and libc/libstdc++ for the linker: the packages a
# Raspberry Pi OS bookworm machine installs with the .deb. apt resolves and downloads them with a
# state of its own under .cache/arm64/apt (its own sources list, architecture arm64, an empty
# dpkg status), so this machine's apt and dpkg are not touched; dpkg -x unpacks them. A stamp
# of the package list makes a second run instant; delete .cache/arm64 to start over.
# onnxruntime 1.24.1 for arm64 comes from the same npm package as the amd64 one (setup.sh),
# into .cache/arm64/lib/, checked against its pinned SHA-256.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cache=${ARM64_CACHE:-$root/.cache/arm64}
sysroot=$cache/sysroot
aptdir=$cache/apt
ORT_VERSION=1.24.1
ORT_SHA256=7954e8bdedb497f830c6a679e818d98399b7f4d81ade1126c3e0be74d28111ab
# The OpenCV modules cvedge links (scripts/opencv-flags.sh, the Depends of the .deb): their
# libraries and what those need at run time. gocv compiles a wrapper for every module, so the
# -dev packages (headers) of the others come too, without their libraries: nothing links them.
read -ra OPENCV_MODULES <<<"$("$root/scripts/opencv-flags.sh" --modules)"
OPENCV_HEADERS_ONLY=(video highgui objdetect calib3d features2d flann dnn photo ml stitching)
MIRROR=${ARM64_MIRROR:-http://deb.debian.org/debian}
SECURITY_MIRROR=${ARM64_SECURITY_MIRROR:-http://deb.debian.org/debian-security}

say() { printf 'arm64-sysroot: %s\n' "$*" >&2; }
die() { printf 'arm64-sysroot: error: %s\n' "$*" >&2; exit 1; }


# libturbojpeg: camera/turbojpeg.go decodes MJPEG frames with it
runtime=(libc6-dev libstdc++-12-dev libturbojpeg0)
devel=(libturbojpeg0-dev)
for m in "${OPENCV_MODULES[@]}"; do runtime+=("libopencv-${m}406"); devel+=("libopencv-${m}-dev"); done
((${#OPENCV_MODULES[@]})) || die "scripts/opencv-flags.sh --modules named no module"
for m in "${OPENCV_HEADERS_ONLY[@]}"; do devel+=("libopencv-${m}-dev"); done
stamp_want=$(printf '%s\n' "$MIRROR" "${runtime[@]}" "${devel[@]}" | sha256sum | cut -d' ' -f1)

if [[ ! -f "$sysroot/.stamp" || "$(cat "$sysroot/.stamp")" != "$stamp_want" ]]; then
  command -v apt-get >/dev/null && command -v dpkg-deb >/dev/null ||
    die "apt-get and dpkg-deb are needed to fetch the arm64 packages: build on Debian 12 (or build on an arm64 machine with make deb)"
  keyring=/usr/share/keyrings/debian-archive-keyring.gpg
  [[ -f $keyring ]] || die "$keyring is missing: apt-get install debian-archive-keyring"
  mkdir -p "$aptdir/lists/partial" "$aptdir/cache/archives/partial" "$aptdir/etc/empty"
  : >"$aptdir/status"
  cat >"$aptdir/etc/sources.list" <<SOURCES
deb [arch=arm64 signed-by=$keyring] $MIRROR bookworm main
deb [arch=arm64 signed-by=$keyring] $MIRROR bookworm-updates main
deb [arch=arm64 signed-by=$keyring] $SECURITY_MIRROR bookworm-security main
SOURCES
  apt=(apt-get -q -o APT::Architecture=arm64 -o APT::Architectures=arm64 -o Acquire::Languages=none
    -o Dir::State="$aptdir" -o Dir::State::status="$aptdir/status" -o Dir::Cache="$aptdir/cache"
    -o Dir::Etc::SourceList="$aptdir/etc/sources.list" -o Dir::Etc::SourceParts="$aptdir/etc/empty"
    -o Dir::Etc::Preferences="$aptdir/etc/empty/none" -o Dir::Etc::PreferencesParts="$aptdir/etc/empty"
    -o Debug::NoLocking=1 -o APT::Sandbox::User=root)
  say "apt-get update (arm64, state in $aptdir)"
  "${apt[@]}" update >/dev/null || die "apt-get update of the arm64 package lists failed: check access to $MIRROR (or set ARM64_MIRROR)"
  # the resolver picks one package per dependency, as an install on the Pi would; -s only prints
  # the plan, against the empty status above, so nothing is installed here
  mapfile -t pkgs < <("${apt[@]}" -s install --no-install-recommends "${runtime[@]}" 2>&1 | awk '/^Inst /{print $2}')
  ((${#pkgs[@]})) || die "apt could not resolve the arm64 runtime packages: ${apt[*]} -s install ${runtime[*]}"
  pkgs+=("${devel[@]}")
  say "downloading ${#pkgs[@]} arm64 packages into $aptdir/debs"
  rm -rf "$aptdir/debs" # only this list's packages: an older version must not be unpacked too
  mkdir -p "$aptdir/debs"
  (cd "$aptdir/debs" && "${apt[@]}" download "${pkgs[@]}" >/dev/null) || die "apt-get download of the arm64 packages failed: check access to $MIRROR"
  say "unpacking into $sysroot"
  rm -rf "$sysroot.tmp"
  mkdir -p "$sysroot.tmp"
  for deb in "$aptdir"/debs/*.deb; do
    dpkg-deb -x "$deb" "$sysroot.tmp"
  done
  # absolute symbolic links (libfoo.so -> /lib/...) point into the sysroot, not at this machine
  find "$sysroot.tmp" -type l -lname '/*' -print0 | while IFS= read -r -d '' link; do
    ln -sfn "$(realpath -ms --relative-to="$(dirname "$link")" "$sysroot.tmp$(readlink "$link")")" "$link"
  done
  printf '%s\n' "$stamp_want" >"$sysroot.tmp/.stamp"
  rm -rf "$sysroot"
  mv "$sysroot.tmp" "$sysroot"
fi
# the update-alternatives links the packages' postinst makes on a real install (dpkg -x runs
# none): libarpack and libarmadillo, under OpenCV, need libblas.so.3 and liblapack.so.3
for alt in blas/libblas.so.3 lapack/liblapack.so.3; do
  link=$sysroot/usr/lib/aarch64-linux-gnu/${alt#*/}
  [[ -e "$link" || ! -e "${link%/*}/$alt" ]] || ln -sfn "$alt" "$link"
done
[[ -f "$sysroot/usr/include/opencv4/opencv2/core.hpp" ]] ||
  die "$sysroot has no OpenCV headers: delete $cache and run again"

# --- onnxruntime for arm64 ----------------------------------------------------------------
ortlib=$cache/lib/libonnxruntime.so.$ORT_VERSION
if [[ ! -f "$ortlib" || "$(sha256sum "$ortlib" | cut -d' ' -f1)" != "$ORT_SHA256" ]]; then
  command -v npm >/dev/null || die "npm is needed to fetch onnxruntime $ORT_VERSION for arm64: run scripts/setup.sh (it installs npm when it fetches the amd64 library), or apt-get install npm"
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  say "fetching onnxruntime-node@$ORT_VERSION with npm pack (arm64 library)"
  (cd "$tmp" && npm pack --silent "onnxruntime-node@$ORT_VERSION" >/dev/null) ||
    die "npm pack onnxruntime-node@$ORT_VERSION failed: check access to the npm registry"
  member=package/bin/napi-v6/linux/arm64/libonnxruntime.so.1
  tar -xzf "$tmp/onnxruntime-node-$ORT_VERSION.tgz" -C "$tmp" "$member"
  got=$(sha256sum "$tmp/$member" | cut -d' ' -f1)
  [[ "$got" == "$ORT_SHA256" ]] || die "arm64 onnxruntime library from npm has SHA-256 $got, expected $ORT_SHA256: refusing to use it"
  mkdir -p "$(dirname "$ortlib")"
  install -m 0644 "$tmp/$member" "$ortlib.tmp"
  mv -f "$ortlib.tmp" "$ortlib"
fi
echo "$sysroot"
