#!/bin/sh
# prerm of the cvedge .deb: stop the service before its files go.
set -e
if [ -d /run/systemd/system ] && [ "$1" = remove ]; then
  systemctl disable --now cvedge.service >/dev/null 2>&1 || true
fi
# the Jetson drop-in link that postinst made (a file of the administrator's own stays)
dropin=/etc/systemd/system/cvedge.service.d/jetson.conf
if [ "$1" = remove ] && [ "$(readlink "$dropin" 2>/dev/null)" = /usr/share/cvedge/systemd/jetson.conf ]; then
  rm -f "$dropin"
  rmdir /etc/systemd/system/cvedge.service.d 2>/dev/null || true
fi
exit 0
