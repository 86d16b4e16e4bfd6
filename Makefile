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

# nfpm builds the .deb packages in pure Go; `go run pkg@version` keeps it out
# of go.mod. v2.46 and later need modules from go.digitalxero.dev (MSIX and
# RPM) that the Go module proxy has refused here (403), so v2.45.0.
NFPM_VERSION := v2.45.0
NFPM     ?= $(GO) run github.com/goreleaser/nfpm/v2/cmd/nfpm@$(NFPM_VERSION)
# A Debian version: v1.2.3 -> 1.2.3; v1.2.3-4-gabc -> 1.2.3+4+gabc;
# an untagged commit abc123 -> 0.0.0~gitabc123 (sorts before any release).
DEB_VERSION ?= $(shell echo '$(VERSION)' | sed -E 's/^v([0-9])/\1/; t tagged; s/^/0.0.0~git/; :tagged; s/-/+/g')
# Debian architecture = binary in dist/ (armhf is the armv6 build, which also
# runs on armv7 and on a 32-bit userland on a 64-bit Pi).
DEB_ARCHS := armhf:armv6 arm64:arm64 amd64:amd64

.PHONY: help build run test test-norace fuzz bench build-pi cross sizes lint fmt clean deb deb-check deb-install-check qemu-check unit-check

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
	@echo "deb         .deb packages for armhf, arm64 and amd64 in dist/ (nfpm $(NFPM_VERSION))"
	@echo "deb-check   dpkg-deb --info/--contents of each .deb, and the package tests"
	@echo "deb-install-check  dpkg -i this machine's .deb, check it, purge it (root; changes the system)"
	@echo "qemu-check  outpost version and outpost check on each ARM binary under qemu-user-static"
	@echo "unit-check  the systemd unit's tests (systemd-analyze verify when installed)"
	@echo "chaos       the field chaos test for CHAOS_DURATION (default $(CHAOS_DURATION)), CHAOS_SEED to repeat a run (root)"

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

# Each ARM binary from build-pi under qemu-user-static, on the oldest CPU
# it is for (armv6: ARM1176): version, check of every example config, a
# short run stopped by SIGTERM (see build/qemu-check.sh). Seconds, not
# minutes; without qemu it says so in one line per binary and succeeds.
qemu-check: build-pi
	build/qemu-check.sh

# One .deb per architecture, named outpost_<version>_<arch>.deb, in dist/.
deb: build-pi
	GOOS=linux GOARCH=amd64 $(BUILD) -o dist/outpost-linux-amd64 ./cmd/outpost
	rm -f dist/outpost_*.deb
	@set -e; for a in $(DEB_ARCHS); do \
		echo "nfpm: outpost $(DEB_VERSION) $${a%%:*}"; \
		DEB_ARCH=$${a%%:*} DEB_VERSION='$(DEB_VERSION)' OUTPOST_BINARY=dist/outpost-linux-$${a##*:} \
			$(NFPM) package --config build/nfpm.yaml --packager deb --target dist/; \
	done
	@ls -l dist/*.deb

# dpkg-deb's view of each package, then the tests that hold it to what the
# README promises (they fail here, rather than skip, when a package or
# dpkg-deb is missing).
deb-check:
	@set -e; for f in dist/outpost_*.deb; do \
		echo "== dpkg-deb --info $$f"; dpkg-deb --info $$f; \
		echo "== dpkg-deb --contents $$f"; dpkg-deb --contents $$f; \
	done
	OUTPOST_DEB_REQUIRED=1 $(GO) test -count=1 -run 'Deb' -v ./build/ ./cmd/outpost/

# Installs the amd64 (or this machine's) package with dpkg, checks the user,
# the config's permissions and a conffile upgrade, then purges it. Changes
# the system: CI runs it as root; it refuses to touch an installed outpost.
deb-install-check:
	OUTPOST_DEB_INSTALL=1 $(GO) test -count=1 -run 'DebInstall' -v ./build/

unit-check:
	$(GO) test -count=1 -run 'Unit' -v ./build/

# The field chaos test (issue 8): the real binary on a 4 MiB tmpfs with an
# MQTT and a Kafka bridge, under flapping uplinks, kills, a full disk, SIGHUP
# and a corrupted queue file, with an auditor of every acknowledged message. Prints the seed (a random
# one unless CHAOS_SEED is set) and one summary line; needs root for the
# tmpfs (it skips otherwise). CI runs CHAOS_DURATION=60s CHAOS_SEED=1.
# -vet=off: make lint vets; a run is about faults, not style.
CHAOS_DURATION ?= 10m
CHAOS_SEED     ?=
CHAOS_TIMEOUT  ?= 2h
.PHONY: chaos
chaos:
	CHAOS_DURATION=$(CHAOS_DURATION) CHAOS_SEED=$(CHAOS_SEED) $(GO) test -count=1 -vet=off -v -run '^TestChaos$$' -timeout $(CHAOS_TIMEOUT) ./cmd/outpost/

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); [ -z "$$out" ] || { echo "gofmt needed:"; echo "$$out"; exit 1; }
	$(GO) vet ./...

fmt:
	gofmt -w $$(git ls-files '*.go')

clean:
	rm -rf bin dist
