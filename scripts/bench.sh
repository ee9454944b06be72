#!/usr/bin/env bash
# make bench: measure cvedge on this machine and write the figures into docs/benchmarks.md,
# between its "bench:begin" and "bench:end" markers (the text around them is kept).
#
#   1. cvedge bench on the demo: the models alone, the pipeline, end to end over MQTT,
#      efficiency, allocations, memory, and 4 realtime cameras at 10 fps; then the same on the
#      demo upscaled to 1920x1080 MJPEG (scripts/video-1080p.sh);
#   2. the Go benchmarks of preprocessing, YOLO decode and NMS, the pipeline and the tracker.
#
# Run it on an otherwise idle machine: the figures are ratios measured in one run, but a
# busy machine still blurs them. BENCH_FRAMES, BENCH_CAMERAS, BENCH_FPS and BENCH_SECONDS
# change the run; BENCH_DOC=- prints the block instead of writing the file.
set -euo pipefail
cd "$(dirname "$0")/.."

GO=${GO:-go}
frames=${BENCH_FRAMES:-300}
cameras=${BENCH_CAMERAS:-4}
fps=${BENCH_FPS:-10}
seconds=${BENCH_SECONDS:-10}
doc=${BENCH_DOC:-docs/benchmarks.md}

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# the malloc setting of the systemd unit (configs/cvedge.service), unless given
export MALLOC_ARENA_MAX=${MALLOC_ARENA_MAX:-2}

echo "bench: cvedge bench on the demo ($frames frames, then $cameras cameras at $fps fps for ${seconds}s)" >&2
./bin/cvedge bench --detector testdata/demo/detector --classifier testdata/demo/classifier \
	--source testdata/demo/conveyor.avi --frames "$frames" \
	--cameras "$cameras" --fps "$fps" --seconds "$seconds" \
	--markdown "$work/report.md" --json >"$work/report.json"

# the same at a real camera's size: the demo video upscaled to 1920x1080 MJPEG (generated
# once into .cache/bench, not committed)
video1080=.cache/bench/conveyor-1080p.avi
[ -f "$video1080" ] || scripts/video-1080p.sh "$video1080" >/dev/null
echo "bench: cvedge bench at 1080p ($frames frames, then $cameras cameras at $fps fps for ${seconds}s)" >&2
./bin/cvedge bench --detector testdata/demo/detector --classifier testdata/demo/classifier \
	--source "$video1080" --frames "$frames" \
	--cameras "$cameras" --fps "$fps" --seconds "$seconds" \
	--markdown "$work/report-1080p.md" --json >"$work/report-1080p.json"

echo "bench: Go benchmarks (preprocess, models, pipeline, tracking)" >&2
CGO_ENABLED=1 $GO test -run '^$' -bench . -benchmem -count 1 ./preprocess ./models ./agent/pipeline ./agent/steps | tee "$work/go.txt" >&2

{
	echo "<!-- bench:begin (written by make bench on $(date -u +%Y-%m-%d); do not edit by hand) -->"
	echo
	echo "Measured $(date -u '+%Y-%m-%d %H:%M UTC') by \`make bench\`."
	echo
	cat "$work/report.md"
	echo
	echo "#### The same at 1080p (\`$video1080\`)"
	echo
	cat "$work/report-1080p.md"
	echo
	echo "| Go benchmark | ms/op | B/op | allocs/op |"
	echo "|---|---|---|---|"
	awk '$1 ~ /^Benchmark/ && $4 == "ns/op" {
		name = $1; sub(/-[0-9]+$/, "", name)
		printf "| %s | %.3f | %s | %s |\n", name, $3 / 1e6, $5, $7
	}' "$work/go.txt"
	echo
	echo "<!-- bench:end -->"
} >"$work/block.md"

if [ "$doc" = - ]; then
	cat "$work/block.md"
	exit 0
fi
if [ ! -f "$doc" ] || ! grep -q '<!-- bench:begin' "$doc"; then
	echo "bench: $doc has no <!-- bench:begin --> ... <!-- bench:end --> block; add one where the figures belong" >&2
	exit 1
fi
awk -v block="$work/block.md" '
	/<!-- bench:begin/ { while ((getline line < block) > 0) print line; skip = 1; next }
	/<!-- bench:end -->/ { skip = 0; next }
	!skip { print }
' "$doc" >"$work/doc.md"
cp "$work/doc.md" "$doc"
echo "bench: wrote $doc" >&2
