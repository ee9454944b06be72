#!/usr/bin/env bash
# check-deb.sh: list a cvedge .deb and check what it installs. Used by make deb and make test.
#
# It runs the packaged binary: natively for this machine's architecture, under
# qemu-aarch64-static for an arm64 package on another machine, with the arm64 sysroot of
# scripts/arm64-sysroot.sh (ARM64_SYSROOT, default .cache/arm64/sysroot) as its root for
# libraries. Then it smoke-tests the packaged binary and its onnxruntime on models: cvedge
# inspect reads every model under testdata/ and the real Custom Vision exports, and cvedge
# eval classifies the 20 photos of the real hemlock/cherry export, all right. The emulated
# run checks correctness only: its speed says nothing about an arm64 machine's.
set -euo pipefail
deb=${1:?usage: scripts/check-deb.sh dist/cvedge_VERSION_ARCH.deb}
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
fail() { printf 'check-deb: %s: %s\n' "$deb" "$*" >&2; exit 1; }

listing=$(dpkg-deb -c "$deb")
echo "$listing"
for path in ./usr/bin/cvedge ./usr/lib/cvedge/libonnxruntime.so.1.24.1 ./lib/systemd/system/cvedge.service \
  ./etc/cvedge/cvedge.yaml ./usr/share/cvedge/cvedge.yaml ./usr/share/doc/cvedge/README.md ./usr/share/doc/cvedge/docs/mqtt.md ./usr/share/doc/cvedge/docs/schemas/prediction.schema.json \
  ./usr/share/doc/cvedge/docs/cli.md ./usr/share/bash-completion/completions/cvedge ./usr/share/zsh/vendor-completions/_cvedge \
  ./usr/share/fish/vendor_completions.d/cvedge.fish ./usr/share/man/man1/cvedge.1.gz ./usr/share/man/man1/cvedge-run.1.gz \
  ./usr/share/cvedge/systemd/jetson.conf; do
  grep -q " $path\$" <<<"$listing" || fail "does not install $path"
done
grep -q -- '-rwxr-xr-x .* ./usr/bin/cvedge$' <<<"$listing" || fail "/usr/bin/cvedge is not executable"

[[ "$(dpkg-deb -f "$deb" Package)" == cvedge ]] || fail "package name"
suggests=$(dpkg-deb -f "$deb" Suggests)
for pkg in gstreamer1.0-plugins-good gstreamer1.0-libav libaravis-0.8-0; do # RTSP over tcp/udp, GenICam
  grep -q "$pkg" <<<"$suggests" || fail "Suggests lacks $pkg: $suggests"
done
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
dpkg-deb -e "$deb" "$tmp/control"
grep -qx /etc/cvedge/cvedge.yaml "$tmp/control/conffiles" || fail "/etc/cvedge/cvedge.yaml is not a conffile (an upgrade would overwrite the user's config)"
[[ -x "$tmp/control/postinst" && -x "$tmp/control/prerm" ]] || fail "postinst or prerm missing"
dpkg-deb -x "$deb" "$tmp/root"
arch=$(dpkg-deb -f "$deb" Architecture)
run=() # how the packaged binary runs here: natively, or emulated
if [[ "$arch" != "$(dpkg --print-architecture)" ]]; then
  [[ "$arch" == arm64 ]] || fail "cannot run a $arch binary on $(dpkg --print-architecture): check it on a $arch machine"
  command -v qemu-aarch64-static >/dev/null || fail "qemu-aarch64-static is needed to run the arm64 binary here: run scripts/setup.sh (it installs qemu-user-static)"
  sysroot=${ARM64_SYSROOT:-$root/.cache/arm64/sysroot}
  [[ -e "$sysroot/lib/ld-linux-aarch64.so.1" ]] || fail "no arm64 sysroot at $sysroot: run scripts/arm64-sysroot.sh (make deb ARCH=arm64 does)"
  run=(qemu-aarch64-static -L "$sysroot")
fi
cvedge() { "${run[@]}" "$tmp/root/usr/bin/cvedge" "$@"; }
machine=$(readelf -h "$tmp/root/usr/bin/cvedge" | sed -n 's/^ *Machine: *//p')
case "$arch:$machine" in
  arm64:AArch64 | amd64:*X86-64) ;;
  *) fail "/usr/bin/cvedge is built for $machine, not $arch" ;;
esac
cvedge version >/dev/null || fail "the packaged binary does not run"
# Depends is what the packaged ELF files need, no more and no less: every NEEDED library (of
# the binary and the bundled onnxruntime) comes from a package of Depends or from the .deb
# itself, and every Depends entry gives one of them (its first alternative that is installed
# here, found with dpkg -S; for an arm64 package built on amd64, the arm64 package in the
# sysroot's download that holds it). Ubuntu 24.04's t64 names are checked by scripts/check-deps.sh.
depends=$(dpkg-deb -f "$deb" Depends)
depnames=$(sed 's/([^)]*)//g; s/:[a-z0-9]*//g' <<<"$depends" | tr ',|' '\n\n' | tr -d ' ')
elves=$(cd "$tmp/root" && find . -type f \( -path ./usr/bin/cvedge -o -name '*.so*' \) | sed 's#^\.##')
shipped=$(for f in $elves; do basename "$f"; done)
providers=
if ((${#run[@]})); then # which arm64 package holds which file: the debs the sysroot was made of
  debindex=$tmp/debindex
  debs=$(dirname "$sysroot")/apt/debs
  compgen -G "$debs/*.deb" >/dev/null || fail "no arm64 packages in $debs: run scripts/arm64-sysroot.sh"
  for d in "$debs"/*.deb; do
    p=$(dpkg-deb -f "$d" Package)
    dpkg-deb -c "$d" | awk -v p="$p" '{print p, $6}'
  done >"$debindex"
fi
for f in $elves; do
  if ((${#run[@]} == 0)); then
    resolved=$(LD_LIBRARY_PATH="$tmp/root/usr/lib/cvedge" ldd "$tmp/root$f") || fail "ldd $f failed: $resolved"
  fi
  for so in $(readelf -d "$tmp/root$f" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p'); do
    grep -qxF "$so" <<<"$shipped" && continue
    if ((${#run[@]})); then # arm64 on amd64: the package of the sysroot's download that holds it
      pkg=$(awk -v tail="/$so" 'substr($2, length($2) - length(tail) + 1) == tail {print $1; exit}' "$debindex")
      [[ -n "$pkg" ]] || fail "$f needs $so, which no package of the arm64 sysroot ($sysroot) holds: add the package that provides it to Depends (scripts/nfpm.yaml)"
    else
      path=$(awk -v so="$so" '$1 == so && $3 ~ /^\// {print $3; exit} $1 ~ "^/.*/" so "$" {print $1; exit}' <<<"$resolved")
      [[ -n "$path" ]] || fail "$f needs $so, which is not installed here: install the package that provides it and add it to Depends (scripts/nfpm.yaml)"
      dir=$(dirname "$path"); dir=${dir#/usr}
      pkg=$(dpkg -S "*$dir/$so" 2>/dev/null | sed -n '1s/[:,].*//p')
      [[ -n "$pkg" ]] || fail "$f needs $so ($path), which no Debian package here provides"
    fi
    providers+="$pkg"$'\n'
    hint=
    [[ "$pkg" == libopencv-* ]] && hint=" if cvedge now calls that OpenCV module (and to scripts/opencv-flags.sh); else build the binary as make build does, with the flags of scripts/opencv-flags.sh and the customenv tag, which link only the modules cvedge uses"
    grep -qxF "$pkg" <<<"$depnames" || fail "$f needs $so from package $pkg, which Depends lacks: add it to depends in scripts/nfpm.yaml$hint (Depends: $depends)"
  done
done
IFS=, read -ra groups <<<"$depends"
for group in "${groups[@]}"; do
  used=
  for alt in ${group//|/ }; do
    [[ "$alt" == \(* || "$alt" == *\) ]] && continue # a version
    grep -qxF "${alt%%:*}" <<<"$providers" && used=1
  done
  [[ -n "$used" ]] || fail "Depends lists${group}, but no NEEDED library of the packaged files comes from it: remove it from depends in scripts/nfpm.yaml (or, if it is loaded at run time, move it to recommends)"
done
# the completions and the manual pages are those of the packaged binary: one page per command
for shell in bash:usr/share/bash-completion/completions/cvedge zsh:usr/share/zsh/vendor-completions/_cvedge fish:usr/share/fish/vendor_completions.d/cvedge.fish; do
  cmp -s <(cvedge completion "${shell%%:*}") "$tmp/root/${shell#*:}" || fail "/${shell#*:} is not the packaged binary's ${shell%%:*} completion"
done
cvedge __man "$tmp/man" || fail "the packaged binary does not write its manual pages"
want=$(cd "$tmp/man" && ls | sed 's/$/.gz/' | sort)
have=$(ls "$tmp/root/usr/share/man/man1" | sort)
[[ "$want" == "$have" ]] || fail "the manual pages are not one per command: $(diff <(echo "$want") <(echo "$have") | tr '\n' ' ')"
for page in "$tmp/root/usr/share/man/man1"/*.gz; do
  zcat "$page" | grep -q '^\.TH "CVEDGE" "1"' || fail "$(basename "$page") is not a manual page"
done
# smoke test: the packaged binary with the packaged onnxruntime (found beside it, in
# ../lib/cvedge/) reads every model and gets the real photos right
unset CVEDGE_ONNXRUNTIME_LIBRARY ONNXRUNTIME_SHARED_LIBRARY_PATH
models=$(cd "$root" && git ls-files 'testdata/*.onnx' | xargs -rn1 dirname | sort -u)
[[ -n "$models" ]] || fail "no model under $root/testdata"
real=$root/../shared/realdata/customvision
if [[ -d "$real" ]]; then
  models+=$'\n'$(find "$real" -mindepth 2 -maxdepth 2 -name model.onnx -printf '%h\n' | sort)
elif [[ "${CI:-}" == true ]]; then
  fail "real Custom Vision exports missing at $real (the shared data folder beside the repository)"
else
  echo "check-deb: real Custom Vision exports missing at $real: inspecting testdata/ only, eval skipped"
fi
while read -r m; do
  if [[ "$(basename "$m")" == legacy-* ]]; then
    # an ONNX 1.0 export onnxruntime cannot load: refused, saying to re-export it
    out=$(cvedge inspect "$m" 2>&1) && fail "cvedge inspect $m: the ONNX 1.0 export was not refused: $out"
    grep -q 're-export' <<<"$out" || fail "cvedge inspect $m: refused without saying to re-export: $out"
    continue
  fi
  out=$(cvedge inspect "$m" 2>&1) || fail "cvedge inspect $m: $out"
  grep -q '^labels (' <<<"$out" || fail "cvedge inspect $m printed no labels: $out"
done <<<"$models"
echo "check-deb: cvedge inspect: $(wc -l <<<"$models") models checked"
if [[ -d "$real/hemlock-cherry-onnx12" ]]; then
  out=$(cd "$tmp" && cvedge eval --model "$real/hemlock-cherry-onnx12" --data "$real/hemlock-cherry-onnx12/images" --out "$tmp/eval" 2>&1) ||
    fail "cvedge eval on hemlock-cherry-onnx12: $out"
  grep -q 'accuracy 100.0% on 20 images (0 failed)' <<<"$out" || fail "cvedge eval on hemlock-cherry-onnx12 is not 20/20: $out"
  echo "check-deb: cvedge eval: $(grep 'accuracy' <<<"$out")"
fi
sed 's#^ExecStart=/usr/bin/cvedge#ExecStart='"$tmp"'/root/usr/bin/cvedge#' "$tmp/root/lib/systemd/system/cvedge.service" > "$tmp/cvedge.service"
if command -v systemd-analyze >/dev/null; then
  systemd-analyze verify "$tmp/cvedge.service" || fail "systemd-analyze verify refuses the unit"
  # the unit as a Jetson runs it: the drop-in's [Service] section after the unit's own
  mkdir -p "$tmp/jetson"
  cat "$tmp/cvedge.service" "$tmp/root/usr/share/cvedge/systemd/jetson.conf" > "$tmp/jetson/cvedge.service"
  systemd-analyze verify "$tmp/jetson/cvedge.service" || fail "systemd-analyze verify refuses the unit with the Jetson drop-in"
elif [[ "${CI:-}" == true ]]; then
  fail "systemd-analyze is missing, so the unit is not checked: install systemd (scripts/setup.sh does)"
else
  echo "check-deb: systemd-analyze missing: the unit and the Jetson drop-in are not checked"
fi
grep -q /usr/share/cvedge/systemd/jetson.conf "$tmp/control/postinst" || fail "postinst does not install the Jetson drop-in"
echo "check-deb: $deb: ok ($(dpkg-deb -f "$deb" Version), $(dpkg-deb -f "$deb" Architecture))"
