# cvedge: `make run` starts the demo, `make test` runs every test. Both run setup first,
# which installs what is missing (Debian packages, the onnxruntime library) and is quick
# when nothing is.

GO        ?= go
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT    ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
LDFLAGS   := -X github.com/cvedge/cvedge/agent.Version=$(VERSION) -X github.com/cvedge/cvedge/agent.Commit=$(COMMIT)
CONFIG    ?= configs/demo.yaml
TESTFLAGS ?=
# matprofile makes gocv count live Mats; camera, preprocess and agent tests fail on a leak.
TESTTAGS  ?= matprofile

export CGO_ENABLED := 1

.PHONY: setup build run test bench lint clean fixtures

setup:
	@scripts/setup.sh

build:
	$(GO) build -ldflags '$(LDFLAGS)' -o bin/cvedge ./cmd/cvedge

# The demo: a recorded conveyor through a detector and a classifier, predictions logged and
# published on the embedded MQTT broker (watch: mosquitto_sub -t 'cvedge/#' -v).
run: setup build
	./bin/cvedge run --config $(CONFIG)

test: setup lint
	$(GO) test -tags $(TESTTAGS) $(TESTFLAGS) ./...

bench: setup
	$(GO) test -run '^$$' -bench . -benchmem ./...

lint:
	$(GO) vet ./...
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

# Regenerate the demo models, video and ground truth (needs python3-onnx, python3-numpy and
# python3-opencv from Debian, run by /usr/bin/python3).
fixtures:
	/usr/bin/python3 testdata/gen_demo.py

clean:
	rm -rf bin dist
	$(GO) clean -testcache
