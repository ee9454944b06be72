#!/bin/sh
# postinst of the cvedge .deb: the service user, then systemd. The service is not started:
# edit /etc/cvedge/cvedge.yaml first, then systemctl enable --now cvedge.
set -e
if ! getent passwd cvedge >/dev/null; then
  useradd --system --user-group --home-dir /var/lib/cvedge --no-create-home --shell /usr/sbin/nologin cvedge
fi
if getent group video >/dev/null; then usermod -aG video cvedge; fi
chgrp cvedge /etc/cvedge/cvedge.yaml || true
# A Jetson gets the drop-in for its GPU and CSI cameras (docs/operations.md, "Jetson"). One the
# administrator put there (or removed by replacing it with their own) is left alone.
dropin=/etc/systemd/system/cvedge.service.d/jetson.conf
if [ -e /etc/nv_tegra_release ] && [ ! -e "$dropin" ] && [ ! -L "$dropin" ]; then
  mkdir -p /etc/systemd/system/cvedge.service.d
  ln -s /usr/share/cvedge/systemd/jetson.conf "$dropin"
fi
if [ -d /run/systemd/system ]; then systemctl daemon-reload || true; fi
exit 0
