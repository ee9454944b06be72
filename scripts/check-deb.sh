#!/usr/bin/env bash
# check-deb.sh: list a cvedge .deb and check what it installs. Used by make deb and make test.
set -euo pipefail
deb=${1:?usage: scripts/check-deb.sh dist/cvedge_VERSION_ARCH.deb}
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
"$tmp/root/usr/bin/cvedge" version >/dev/null || fail "the packaged binary does not run"
# Depends is what the packaged ELF files need, no more and no less: every NEEDED library (of
# the binary and the bundled onnxruntime) comes from a package of Depends or from the .deb
# itself, and every Depends entry gives one of them (its first alternative that is installed
# here, found with dpkg -S). Ubuntu 24.04's t64 names are checked by scripts/check-deps.sh.
depends=$(dpkg-deb -f "$deb" Depends)
depnames=$(sed 's/([^)]*)//g; s/:[a-z0-9]*//g' <<<"$depends" | tr ',|' '\n\n' | tr -d ' ')
elves=$(cd "$tmp/root" && find . -type f \( -path ./usr/bin/cvedge -o -name '*.so*' \) | sed 's#^\.##')
shipped=$(for f in $elves; do basename "$f"; done)
providers=
for f in $elves; do
  resolved=$(LD_LIBRARY_PATH="$tmp/root/usr/lib/cvedge" ldd "$tmp/root$f") || fail "ldd $f failed: $resolved"
  for so in $(readelf -d "$tmp/root$f" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p'); do
    grep -qxF "$so" <<<"$shipped" && continue
    path=$(awk -v so="$so" '$1 == so && $3 ~ /^\// {print $3; exit} $1 ~ "^/.*/" so "$" {print $1; exit}' <<<"$resolved")
    [[ -n "$path" ]] || fail "$f needs $so, which is not installed here: install the package that provides it and add it to Depends (scripts/nfpm.yaml)"
    dir=$(dirname "$path"); dir=${dir#/usr}
    pkg=$(dpkg -S "*$dir/$so" 2>/dev/null | sed -n '1s/[:,].*//p')
    [[ -n "$pkg" ]] || fail "$f needs $so ($path), which no Debian package here provides"
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
  cmp -s <("$tmp/root/usr/bin/cvedge" completion "${shell%%:*}") "$tmp/root/${shell#*:}" || fail "/${shell#*:} is not the packaged binary's ${shell%%:*} completion"
done
"$tmp/root/usr/bin/cvedge" __man "$tmp/man" || fail "the packaged binary does not write its manual pages"
want=$(cd "$tmp/man" && ls | sed 's/$/.gz/' | sort)
have=$(ls "$tmp/root/usr/share/man/man1" | sort)
[[ "$want" == "$have" ]] || fail "the manual pages are not one per command: $(diff <(echo "$want") <(echo "$have") | tr '\n' ' ')"
for page in "$tmp/root/usr/share/man/man1"/*.gz; do
  zcat "$page" | grep -q '^\.TH "CVEDGE" "1"' || fail "$(basename "$page") is not a manual page"
done
sed 's#^ExecStart=/usr/bin/cvedge#ExecStart='"$tmp"'/root/usr/bin/cvedge#' "$tmp/root/lib/systemd/system/cvedge.service" > "$tmp/cvedge.service"
if command -v systemd-analyze >/dev/null; then
  systemd-analyze verify "$tmp/cvedge.service" || fail "systemd-analyze verify refuses the unit"
  # the unit as a Jetson runs it: the drop-in's [Service] section after the unit's own
  mkdir -p "$tmp/jetson"
  cat "$tmp/cvedge.service" "$tmp/root/usr/share/cvedge/systemd/jetson.conf" > "$tmp/jetson/cvedge.service"
  systemd-analyze verify "$tmp/jetson/cvedge.service" || fail "systemd-analyze verify refuses the unit with the Jetson drop-in"
fi
grep -q /usr/share/cvedge/systemd/jetson.conf "$tmp/control/postinst" || fail "postinst does not install the Jetson drop-in"
echo "check-deb: $deb: ok ($(dpkg-deb -f "$deb" Version), $(dpkg-deb -f "$deb" Architecture))"
