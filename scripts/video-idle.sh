#!/usr/bin/env bash
# video-idle.sh [OUT]: a line that stands idle most of the time, for cvedge bench --motion
# (docs/benchmarks.md, "Idle lines"): 4 s of the demo video (one part crosses the belt, the
# next comes halfway in and is taken off), then 36 s of the empty belt standing still (the
# demo's first frame, held), 40 s in all at 10 fps, so that a 40 s run sees one whole cycle.
# The demo's MJPEG frames are copied, not encoded again. It is generated, not committed.
# IDLE_PASS and IDLE_STILL change the two counts (IDLE_PASS=1 IDLE_STILL=200: a belt standing
# still for 20 s). Default OUT: .cache/bench/idle.avi. Needs gst-launch-1.0 (Debian: gstreamer1.0-tools) with
# the base and good plugins.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
out=${1:-$root/.cache/bench/idle.avi}
pass=${IDLE_PASS:-40}    # frames of the demo video
still=${IDLE_STILL:-360} # frames of the empty belt after them
command -v gst-launch-1.0 >/dev/null || { echo "video-idle: gst-launch-1.0 missing: apt-get install gstreamer1.0-tools" >&2; exit 1; }
mkdir -p "$(dirname "$out")"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir "$tmp/demo" "$tmp/idle"
gst-launch-1.0 -q filesrc location="$root/testdata/demo/conveyor.avi" ! avidemux ! image/jpeg \
  ! multifilesink location="$tmp/demo/%05d.jpg"
n=0
for ((i = 0; i < pass; i++)); do
  cp "$tmp/demo/$(printf %05d "$i").jpg" "$tmp/idle/$(printf %05d "$n").jpg"
  n=$((n + 1))
done
for ((i = 0; i < still; i++)); do
  cp "$tmp/demo/00000.jpg" "$tmp/idle/$(printf %05d "$n").jpg" # the empty belt
  n=$((n + 1))
done
gst-launch-1.0 -q multifilesrc location="$tmp/idle/%05d.jpg" index=0 stop-index=$((n - 1)) \
  caps="image/jpeg,framerate=10/1" ! jpegparse ! avimux ! filesink location="$out.tmp"
mv -f "$out.tmp" "$out"
echo "$out"
