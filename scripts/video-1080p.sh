#!/usr/bin/env bash
# video-1080p.sh [OUT]: the demo video upscaled to 1920x1080 MJPEG (what a real camera
# delivers), for cvedge bench at camera sizes (docs/benchmarks.md, "Cameras at 1080p"). It is
# generated, not committed: about 18 MB. Default OUT: .cache/bench/conveyor-1080p.avi.
# Needs gst-launch-1.0 (Debian: gstreamer1.0-tools) with the base and good plugins.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
out=${1:-$root/.cache/bench/conveyor-1080p.avi}
command -v gst-launch-1.0 >/dev/null || { echo "video-1080p: gst-launch-1.0 missing: apt-get install gstreamer1.0-tools" >&2; exit 1; }
mkdir -p "$(dirname "$out")"
gst-launch-1.0 -q filesrc location="$root/testdata/demo/conveyor.avi" ! decodebin ! videoconvert \
  ! videoscale method=bilinear ! video/x-raw,width=1920,height=1080 ! jpegenc quality=90 \
  ! avimux ! filesink location="$out.tmp"
mv -f "$out.tmp" "$out"
echo "$out"
