# outpost. `make help` lists the targets; .ci/run calls them in CI's order.

GO       ?= go
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS  := -s -w -X main.version=$(VERSION)
BUILD    := CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)'
# The race detector needs a C toolchain; without one the tests run without it.
RACE     := $(shell command -v gcc >/dev/null 2>&1 && echo -race)
FUZZTIME ?= 10s   # a duration, or a count of inputs such as 50000x (what CI uses)
# make bench: 1,000,000-message figures; CI sets a small count.
OUTPOST_BENCH_MESSAGES ?= 1000000
export OUTPOST_BENCH_MESSAGES

.PHONY: help build run test test-norace fuzz bench build-pi cross sizes lint fmt clean

help:
	@echo "build       the outpost binary for this machine, in bin/"
	@echo "run         run outpost on the embedded default config"
	@echo "test        every test, with the race detector (README's test command)"
	@echo "test-norace every test, without it"
	@echo "fuzz        each fuzz target for FUZZTIME (default $(FUZZTIME))"
	@echo "bench       benchmarks with full figures (1,000,000 messages)"
	@echo "build-pi    stripped linux/arm (GOARM=6, 7) and arm64 binaries in dist/"
	@echo "cross       build-pi plus linux/amd64, and print the sizes"
	@echo "lint        gofmt and go vet"

build:
	$(BUILD) -o bin/outpost ./cmd/outpost

run:
	$(GO) run ./cmd/outpost run

test:
	@[ -n "$(RACE)" ] || echo "note: no C compiler found; running the tests without -race"
	CGO_ENABLED=$(if $(RACE),1,0) $(GO) test $(RACE) -shuffle=on -timeout 20m ./...

test-norace:
	$(GO) test -shuffle=on -timeout 20m ./...

# Each fuzz target runs alone (go test allows one -fuzz per package run).
FUZZ_TARGETS := \
	./storage/internal/codec:FuzzDecode \
	./storage/internal/codec:FuzzRoundTrip \
	./configs:FuzzParse \
	./bridge/route:FuzzMatch \
	./bridge/route:FuzzTemplate

fuzz:
	@set -e; for t in $(FUZZ_TARGETS); do \
		pkg=$${t%%:*}; fn=$${t##*:}; \
		echo "fuzz $$fn ($$pkg) for $(FUZZTIME)"; \
		$(GO) test -run '^$$' -fuzz "^$$fn$$" -fuzztime $(FUZZTIME) -fuzzminimizetime 2s $$pkg; \
	done

bench:
	$(GO) test -run '^$$' -bench . -benchtime 1x -timeout 60m ./...

build-pi:
	mkdir -p dist
	GOOS=linux GOARCH=arm GOARM=6 $(BUILD) -o dist/outpost-linux-armv6 ./cmd/outpost
	GOOS=linux GOARCH=arm GOARM=7 $(BUILD) -o dist/outpost-linux-armv7 ./cmd/outpost
	GOOS=linux GOARCH=arm64 $(BUILD) -o dist/outpost-linux-arm64 ./cmd/outpost

cross: build-pi
	GOOS=linux GOARCH=amd64 $(BUILD) -o dist/outpost-linux-amd64 ./cmd/outpost
	@$(MAKE) --no-print-directory sizes

# Fails when the armv6 binary reaches 15 MB (SPEC promise 8).
sizes:
	@for f in dist/outpost-linux-*; do stat -c '%n %s' $$f | awk '{ n = split($$1, p, "/"); printf "%-28s %6.2f MB\n", p[n], $$2 / 1e6 }'; done
	@s=$$(stat -c %s dist/outpost-linux-armv6); [ $$s -lt 15000000 ] || { echo "armv6 binary is $$s bytes: over the 15 MB budget"; exit 1; }

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); [ -z "$$out" ] || { echo "gofmt needed:"; echo "$$out"; exit 1; }
	$(GO) vet ./...

fmt:
	gofmt -w $$(git ls-files '*.go')

clean:
	rm -rf bin dist
