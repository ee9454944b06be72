#!/usr/bin/env bash
# opencv-flags.sh [SYSROOT]: the cgo flags that build cvedge against the OpenCV modules it
# uses, and no others. Each flag set here replaces go's default (-O2 -g). gocv compiles a C++ wrapper for every OpenCV module; built with the
# customenv tag it takes its flags from CGO_CPPFLAGS, CGO_CXXFLAGS and CGO_LDFLAGS instead
# of `pkg-config opencv4` (which links every module: highgui pulls Qt, dnn protobuf...).
# Each wrapper function gets its own section (-ffunction-sections) and the linker drops
# those nothing calls (--gc-sections), so the binary needs only the modules below;
# --as-needed keeps out any library nothing is taken from. A module missing from the list
# fails the link (undefined reference), never the run.
#
# scripts/opencv-flags.sh --modules prints the list of modules alone.
# It prints four shell assignments, to source or eval:
#   eval "$(scripts/opencv-flags.sh)" && export CGO_CPPFLAGS CGO_CFLAGS CGO_CXXFLAGS CGO_LDFLAGS
#   go build -tags customenv ./cmd/cvedge
# SYSROOT (default /) is the root holding the OpenCV headers and libraries: another
# architecture's root for a cross build. The Makefile takes its flags from here for build,
# test, deb and bench, so the tests test what ships.
set -euo pipefail

# The OpenCV modules cvedge calls (camera, preprocess): libopencv_<module>.so.406, and the
# Debian packages libopencv-<module>406 that scripts/nfpm.yaml depends on.
modules="videoio imgcodecs imgproc core"
if [ "${1:-}" = --modules ]; then # the list alone (scripts/arm64-sysroot.sh fetches these)
	echo "$modules"
	exit 0
fi

sysroot=${1:-/}
sysroot=${sysroot%/}
inc=$sysroot/usr/include/opencv4
[ -f "$inc/opencv2/core.hpp" ] || {
	echo "opencv-flags: $inc/opencv2/core.hpp not found: install libopencv-dev in ${sysroot:-/} (scripts/setup.sh does on this machine)" >&2
	exit 1
}
libdir=
for d in "$sysroot"/usr/lib/*-linux-gnu* "$sysroot"/usr/lib "$sysroot"/usr/local/lib; do
	if [ -e "$d/libopencv_core.so" ]; then libdir=$d; break; fi
done
[ -n "$libdir" ] || {
	echo "opencv-flags: libopencv_core.so not found under ${sysroot:-/}/usr/lib: install libopencv-dev in ${sysroot:-/}" >&2
	exit 1
}

ldflags="-L$libdir -Wl,-rpath-link,$libdir -Wl,--gc-sections -Wl,--as-needed"
# another root's /lib/<triplet> too: what its OpenCV needs in turn (Debian 12 ships some there)
if [ -n "$sysroot" ] && [ -d "$sysroot/lib/$(basename "$libdir")" ]; then
	ldflags="$ldflags -Wl,-rpath-link,$sysroot/lib/$(basename "$libdir")"
fi
for m in $modules; do
	[ -e "$libdir/libopencv_$m.so" ] || {
		echo "opencv-flags: $libdir/libopencv_$m.so not found: install libopencv-dev in ${sysroot:-/}" >&2
		exit 1
	}
	ldflags="$ldflags -lopencv_$m"
done

printf "CGO_CPPFLAGS='-I%s'\n" "$inc"
printf "CGO_CFLAGS='%s'\n" "-O2 -g -ffunction-sections -fdata-sections"
printf "CGO_CXXFLAGS='%s'\n" "-O2 -g --std=c++11 -ffunction-sections -fdata-sections"
printf "CGO_LDFLAGS='%s'\n" "$ldflags"
