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
depends=$(dpkg-deb -f "$deb" Depends)
for dep in libopencv-core406 libopencv-videoio406 libstdc++6; do
  grep -q "$dep" <<<"$depends" || fail "Depends lacks $dep: $depends"
done
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
