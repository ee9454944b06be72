#!/usr/bin/env bash
# check-deb.sh: list a cvedge .deb and check what it installs. Used by make deb and make test.
set -euo pipefail
deb=${1:?usage: scripts/check-deb.sh dist/cvedge_VERSION_ARCH.deb}
fail() { printf 'check-deb: %s: %s\n' "$deb" "$*" >&2; exit 1; }

listing=$(dpkg-deb -c "$deb")
echo "$listing"
for path in ./usr/bin/cvedge ./usr/lib/cvedge/libonnxruntime.so.1.24.1 ./lib/systemd/system/cvedge.service \
  ./etc/cvedge/cvedge.yaml ./usr/share/cvedge/cvedge.yaml ./usr/share/doc/cvedge/README.md ./usr/share/doc/cvedge/docs/mqtt.md ./usr/share/doc/cvedge/docs/schemas/prediction.schema.json; do
  grep -q " $path\$" <<<"$listing" || fail "does not install $path"
done
grep -q -- '-rwxr-xr-x .* ./usr/bin/cvedge$' <<<"$listing" || fail "/usr/bin/cvedge is not executable"

[[ "$(dpkg-deb -f "$deb" Package)" == cvedge ]] || fail "package name"
depends=$(dpkg-deb -f "$deb" Depends)
for dep in libopencv-core406 libopencv-videoio406 libstdc++6; do
  grep -q "$dep" <<<"$depends" || fail "Depends lacks $dep: $depends"
done
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
dpkg-deb -e "$deb" "$tmp/control"
grep -qx /etc/cvedge/cvedge.yaml "$tmp/control/conffiles" || fail "/etc/cvedge/cvedge.yaml is not a conffile (an upgrade would overwrite the user's config)"
[[ -x "$tmp/control/postinst" && -x "$tmp/control/prerm" ]] || fail "postinst or prerm missing"
dpkg-deb -x "$deb" "$tmp/root"
"$tmp/root/usr/bin/cvedge" version >/dev/null || fail "the packaged binary does not run"
sed 's#^ExecStart=/usr/bin/cvedge#ExecStart='"$tmp"'/root/usr/bin/cvedge#' "$tmp/root/lib/systemd/system/cvedge.service" > "$tmp/cvedge.service"
if command -v systemd-analyze >/dev/null; then
  systemd-analyze verify "$tmp/cvedge.service" || fail "systemd-analyze verify refuses the unit"
fi
echo "check-deb: $deb: ok ($(dpkg-deb -f "$deb" Version), $(dpkg-deb -f "$deb" Architecture))"
