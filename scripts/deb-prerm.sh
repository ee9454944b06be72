#!/bin/sh
# prerm of the cvedge .deb: stop the service before its files go.
set -e
if [ -d /run/systemd/system ] && [ "$1" = remove ]; then
  systemctl disable --now cvedge.service >/dev/null 2>&1 || true
fi
exit 0
