# cvedge: `make run` starts the demo, `make test` runs every test. Both run setup first,
# which installs what is missing (Debian packages, the onnxruntime library) and is quick
# when nothing is.

GO        ?= go
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT    ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
LDFLAGS   := -X github.com/cvedge/cvedge/agent.Version=$(VERSION) -X github.com/cvedge/cvedge/agent.Commit=$(COMMIT)
CONFIG    ?= configs/demo.yaml
# -p 1: packages one at a time, so the timing-sensitive tests (broker outages, watchdog) do
# not compete for the CPU of a small box.
TESTFLAGS ?= -p 1
# matprofile makes gocv count live Mats; camera, preprocess and agent tests fail on a leak.
TESTTAGS  ?= matprofile,customenv

export CGO_ENABLED := 1
# The Go on PATH builds, or the build stops and says so: an older Go would otherwise try to
# download the toolchain go.mod names, which fails on an offline box with no hint.
# scripts/setup.sh checks the version against go.mod first. GOTOOLCHAIN=auto make ... allows it.
GOTOOLCHAIN ?= local
export GOTOOLCHAIN

# OpenCV: only the modules cvedge uses are linked. gocv's customenv tag takes the cgo flags
# from the environment, and scripts/opencv-flags.sh is the one place they are made (for
# another root: SYSROOT=...), so build, test, deb and bench link what ships (build and test run
# the script first, so that its error, if any, is seen). A plain `go build`
# or `go test` without the tag takes gocv's `pkg-config opencv4` (every module) and works too.
export GOFLAGS += -tags=customenv
opencv_flag = $(shell scripts/opencv-flags.sh $(SYSROOT) 2>/dev/null | sed -n "s/^$(1)='\(.*\)'$$/\1/p")
export CGO_CPPFLAGS = $(call opencv_flag,CGO_CPPFLAGS)
export CGO_CFLAGS = $(call opencv_flag,CGO_CFLAGS)
export CGO_CXXFLAGS = $(call opencv_flag,CGO_CXXFLAGS)
export CGO_LDFLAGS = $(call opencv_flag,CGO_LDFLAGS)

NFPM      ?= go run github.com/goreleaser/nfpm/v2/cmd/nfpm@v2.45.2
# Debian versions must start with a digit: a vX.Y.Z tag gives X.Y.Z, anything else 0.0.0+git<commit>.
TAG         := $(shell git describe --tags --exact-match --match 'v[0-9]*' 2>/dev/null)
DEB_VERSION ?= $(if $(TAG),$(patsubst v%,%,$(TAG)),0.0.0+git$(COMMIT))

.PHONY: setup build build-arm64 deb-unsupported run test bench soak lint clean fixtures deb proto

# make deb ARCH=arm64 on an amd64 machine cross-builds the arm64 package: aarch64-linux-gnu-gcc
# against a Debian 12 arm64 sysroot (scripts/arm64-sysroot.sh: OpenCV and what it needs,
# unpacked into .cache/arm64/sysroot, and onnxruntime into .cache/arm64/lib/), gocv's customenv tag
# with the cgo flags of ARM64_OPENCV_FLAGS, and check-deb.sh runs the result under
# qemu-aarch64-static. On an arm64 machine ARCH=arm64 is the plain native build.
HOST_ARCH     := $(shell dpkg --print-architecture 2>/dev/null || $(GO) env GOARCH)
# only from the command line: an ARCH in the environment (x86_64, ...) means something else
ifneq ($(origin ARCH),command line)
ARCH          := $(HOST_ARCH)
endif
ARM64_SYSROOT := $(CURDIR)/.cache/arm64/sysroot
# prints CGO_CPPFLAGS, CGO_CFLAGS, CGO_CXXFLAGS and CGO_LDFLAGS for the sysroot given last: the
# same few OpenCV modules as the native build
ARM64_OPENCV_FLAGS ?= scripts/opencv-flags.sh
ifeq ($(ARCH),$(HOST_ARCH))
DEB_BIN   := bin/cvedge
DEB_ORT   := lib/libonnxruntime.so.1.24.1
DEB_BUILD := build
DEB_RUN   :=
else ifeq ($(ARCH),arm64)
DEB_BIN   := bin/arm64/cvedge
DEB_ORT   := .cache/arm64/lib/libonnxruntime.so.1.24.1
DEB_BUILD := build-arm64
DEB_RUN   := qemu-aarch64-static -L $(ARM64_SYSROOT)
else
DEB_BUILD := deb-unsupported
endif

setup:
	@scripts/setup.sh

build:
	@scripts/opencv-flags.sh $(SYSROOT) >/dev/null
	$(GO) build -ldflags '$(LDFLAGS)' -o bin/cvedge ./cmd/cvedge

# The demo: a recorded conveyor through a detector and a classifier, predictions logged and
# published on the embedded MQTT broker (watch: mosquitto_sub -t 'cvedge/#' -v).
run: setup build
	./bin/cvedge run --config $(CONFIG)

test: setup lint
	@scripts/opencv-flags.sh $(SYSROOT) >/dev/null
	$(GO) test -tags $(TESTTAGS) $(TESTFLAGS) ./...
	@# allocations per frame, counted without matprofile (which allocates to record each Mat)
	$(GO) test -count 1 -run 'Allocations|ResultsReused' ./agent/pipeline ./models ./camera
	$(MAKE) --no-print-directory deb
	@# the arm64 package too, cross-built and smoke-tested under qemu (check-deb.sh)
	$(if $(filter amd64,$(HOST_ARCH)),$(MAKE) --no-print-directory deb ARCH=arm64)

# Measures the demo on this machine (cvedge bench and the Go benchmarks) and writes the
# figures into docs/benchmarks.md. Run it on an idle machine.
bench: setup build
	scripts/bench.sh

# A bounded soak of the real agent (bin/cvedge) on the demo, loopback only: broker outages and
# freezes, reloads, hot swaps and a full spool disk, one at a time, for SOAK_DURATION. It prints
# its figures, writes them to .cache/soak/, and fails on an unexplained frame id gap, a spool
# that does not drain, memory or goroutine growth, or an unclean stop. It mounts a tmpfs for the
# spool, so it runs as root. Not part of make test; see docs/operations.md#soak-test.
SOAK_DURATION ?= 30m
soak: setup build
	SOAK_DURATION=$(SOAK_DURATION) SOAK_BIN=$(CURDIR)/bin/cvedge $(GO) test -tags soak,customenv -count 1 -timeout 0 -v -run '^TestSoak' ./cmd/cvedge

lint:
	$(GO) vet ./...
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

# Regenerate the Go code of the Sparkplug B payload (agent/sparkplug/sparkplugpb) from its
# .proto. Needs protoc and protoc-gen-go of the google.golang.org/protobuf version in go.mod
# (go install google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.12); the generated file is
# committed, so the build and the tests do not need them.
proto:
	protoc --proto_path=. --go_out=. --go_opt=paths=source_relative agent/sparkplug/sparkplugpb/sparkplug_b.proto

# Regenerate the demo models, video and ground truth (needs python3-onnx, python3-numpy and
# python3-opencv from Debian, run by /usr/bin/python3).
fixtures:
	/usr/bin/python3 testdata/gen_demo.py

# A .deb for this machine's architecture (amd64 or arm64), or for ARCH=arm64 from amd64, with
# nfpm: the binary, onnxruntime, the systemd unit, the sample config, the shell completions and
# a manual page per command (both made by the binary just built, into dist/share). It is listed
# and checked by scripts/check-deb.sh, and its Depends are resolved against Debian 12 (amd64,
# arm64: also Raspberry Pi OS) and Ubuntu 24.04 by scripts/check-deps.sh (package lists cached
# in .cache/apt).
deb: setup $(DEB_BUILD)
	@mkdir -p dist
	rm -rf dist/cvedge_*_$(ARCH).deb dist/share
	mkdir -p dist/share/completions dist/share/man1
	$(DEB_RUN) $(DEB_BIN) completion bash > dist/share/completions/cvedge
	$(DEB_RUN) $(DEB_BIN) completion zsh > dist/share/completions/_cvedge
	$(DEB_RUN) $(DEB_BIN) completion fish > dist/share/completions/cvedge.fish
	$(DEB_RUN) $(DEB_BIN) __man dist/share/man1
	gzip -9n dist/share/man1/*.1
	VERSION=$(DEB_VERSION) DEB_ARCH=$(ARCH) DEB_BIN=$(DEB_BIN) DEB_ORT=$(DEB_ORT) $(NFPM) package --config scripts/nfpm.yaml --packager deb --target dist/
	ARM64_SYSROOT=$(ARM64_SYSROOT) scripts/check-deb.sh dist/cvedge_*_$(ARCH).deb
	scripts/check-deps.sh dist/cvedge_*_$(ARCH).deb

deb-unsupported:
	@echo "deb: ARCH=$(ARCH) cannot be built here: make deb builds for this machine ($(HOST_ARCH)), or ARCH=arm64"; exit 1

# The arm64 binary, cross-built on an amd64 machine (see ARCH above).
build-arm64:
	@command -v aarch64-linux-gnu-g++ >/dev/null || { echo "build-arm64: aarch64-linux-gnu-g++ missing: run scripts/setup.sh (it installs g++-aarch64-linux-gnu)"; exit 1; }
	scripts/arm64-sysroot.sh >/dev/null
	@mkdir -p bin/arm64
	eval "$$($(ARM64_OPENCV_FLAGS) $(ARM64_SYSROOT))" && export CGO_CPPFLAGS CGO_CFLAGS CGO_CXXFLAGS CGO_LDFLAGS && \
	  GOOS=linux GOARCH=arm64 CGO_ENABLED=1 \
	  CC="aarch64-linux-gnu-gcc --sysroot=$(ARM64_SYSROOT)" CXX="aarch64-linux-gnu-g++ --sysroot=$(ARM64_SYSROOT)" \
	  PKG_CONFIG_SYSROOT_DIR=$(ARM64_SYSROOT) \
	  PKG_CONFIG_LIBDIR=$(ARM64_SYSROOT)/usr/lib/aarch64-linux-gnu/pkgconfig:$(ARM64_SYSROOT)/usr/share/pkgconfig \
	  $(GO) build -tags customenv -ldflags '$(LDFLAGS)' -o bin/arm64/cvedge ./cmd/cvedge

clean:
	rm -rf bin dist
	$(GO) clean -testcache
