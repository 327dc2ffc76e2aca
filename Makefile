GO ?= go
FUZZTIME ?= 20s
BENCH_FLAGS ?= -kinds rtmp,flv,rtsp,whep,hls,hls-ts
FAILOVER_FLAGS ?=
CLUSTER_FLAGS ?=
SOAK ?= 10m
SOAK_FLAGS ?=

BIN := bin

# Third-party JavaScript of the player pages (hls.js, mpegts.js): pinned in
# static/package.json and static/package-lock.json (versions and integrity
# hashes), installed with npm ci; see static/vendor/README.md.
VENDOR := static/vendor
NPM ?= npm

.DEFAULT_GOAL := build

.PHONY: build vendor run tools test test-short bench bench-failover bench-cluster bench-memory soak fuzz install clean

build: vendor
	@mkdir -p $(BIN)
	$(GO) build -ldflags "-X main.version=$(shell git describe --always --dirty 2>/dev/null || echo dev)" -o $(BIN)/liveedge ./cmd/liveedge
	$(GO) build -ldflags "-X main.version=$(shell git describe --always --dirty 2>/dev/null || echo dev)" -o $(BIN)/liveedge-bench ./cmd/liveedge-bench

# The player pages' JavaScript, from npm as static/package-lock.json pins it
# (npm ci), copied into static/vendor/ (git-ignored) before go:embed picks it
# up. It never fails the build: without npm or the registry, the page offers
# WebRTC only (and native HLS on Safari).
vendor:
	@lock=$$(sha256sum static/package-lock.json | cut -d' ' -f1); \
	if [ "$$(cat $(VENDOR)/lock.sha256 2>/dev/null)" = "$$lock" ] && [ -s $(VENDOR)/hls.min.js ] && [ -s $(VENDOR)/mpegts.js ]; then \
		exit 0; \
	fi; \
	tmp=$$(mktemp -d); \
	cp static/package.json static/package-lock.json "$$tmp/"; \
	if (cd "$$tmp" && $(NPM) ci --ignore-scripts --no-audit --no-fund --fetch-retries=1 --fetch-timeout=20000 >npm.log 2>&1) && \
		cp "$$tmp/node_modules/hls.js/dist/hls.min.js" $(VENDOR)/hls.min.js && \
		cp "$$tmp/node_modules/mpegts.js/dist/mpegts.js" $(VENDOR)/mpegts.js; then \
		echo "$$lock" > $(VENDOR)/lock.sha256; \
		rm -f $(VENDOR)/hls.js.version; \
		echo "vendor: hls.js and mpegts.js installed into $(VENDOR)/ (static/package-lock.json)"; \
	else \
		rm -f $(VENDOR)/hls.min.js $(VENDOR)/mpegts.js $(VENDOR)/lock.sha256; \
		echo "vendor: WARNING: could not install the player's JavaScript from npm; the player page offers WebRTC only"; \
		tail -n 3 "$$tmp/npm.log" 2>/dev/null || true; \
	fi; \
	rm -rf "$$tmp"

# Installs the binary, the systemd unit and (when there is none yet) a
# configuration. PREFIX and DESTDIR as usual; then, as root:
#   useradd --system --no-create-home liveedge && systemctl enable --now liveedge
PREFIX ?= /usr/local
install: build
	install -D -m 0755 $(BIN)/liveedge $(DESTDIR)$(PREFIX)/bin/liveedge
	install -D -m 0644 packaging/liveedge.service $(DESTDIR)/etc/systemd/system/liveedge.service
	@if [ ! -e $(DESTDIR)/etc/liveedge/liveedge.yaml ]; then \
		install -D -m 0640 packaging/examples/single-edge.yaml $(DESTDIR)/etc/liveedge/liveedge.yaml; \
		echo "install: /etc/liveedge/liveedge.yaml from packaging/examples/single-edge.yaml: change its secrets"; \
	fi

# No arguments: embedded default config, serving the demo stream live/demo.
run: build
	@echo "play: ffplay rtmp://127.0.0.1/live/demo"
	./$(BIN)/liveedge

# External test peers (ffmpeg, nginx + RTMP module, chromium).
tools:
	bash .ci/install-tools.sh

test: tools vendor
	$(GO) vet ./...
	$(GO) test -race -count=1 -timeout 14m ./...

test-short:
	$(GO) test -race -short ./...

# Every viewer kind (about 5 minutes: rtmp and flv 1.2 min each, rtsp 0.8,
# whep 0.7, hls and hls-ts 1.3 together), then the failover run (1.5 min),
# the cluster run (1 min) and the memory run (1 min).
bench: build tools
	./$(BIN)/liveedge-bench -server ./$(BIN)/liveedge $(BENCH_FLAGS)
	./$(BIN)/liveedge-bench -server ./$(BIN)/liveedge -failover 10 $(FAILOVER_FLAGS)
	./$(BIN)/liveedge-bench -server ./$(BIN)/liveedge -cluster 5 $(CLUSTER_FLAGS)
	./$(BIN)/liveedge-bench -server ./$(BIN)/liveedge -memory

# Origin failover alone (about 1.5 min): two nginx-rtmp origins, the primary
# killed 10 times and frozen 3 times; the media gap one viewer sees.
bench-failover: build tools
	./$(BIN)/liveedge-bench -server ./$(BIN)/liveedge -failover 10 $(FAILOVER_FLAGS)

# Edge cluster alone (about 1 min): redis-server, one nginx-rtmp origin,
# three liveedge nodes; origin connections per stream, the latency a
# sibling hop adds, and the media gap when the node pulling from the
# origin is killed (5 times).
bench-cluster: build tools
	./$(BIN)/liveedge-bench -server ./$(BIN)/liveedge -cluster 5 $(CLUSTER_FLAGS)

# Memory alone (about 1 min): RSS per stream (50 streams at 2 Mbit/s, no
# viewers) against each stream's GOP cache, and the GOP cache and RSS under
# one 20 Mbit/s stream with a 10-second GOP.
bench-memory: build
	./$(BIN)/liveedge-bench -server ./$(BIN)/liveedge -memory

# Soak (SOAK, default 10m): 20 streams pulled on demand from two nginx-rtmp
# origins that are killed or frozen at random, one at a time; 500 viewers
# (RTMP, HTTP-FLV, RTSP, LL-HLS, WHEP) joining and leaving; RSS, goroutines
# and open files every 10 s (a flat line is the pass), failovers, viewer
# disconnects nobody asked for (target 0) and the worst TTFF. Bounded: it
# stops after SOAK. E.g. make soak SOAK=2m SOAK_FLAGS='-soak-viewers 200'
soak: build tools
	./$(BIN)/liveedge-bench -server ./$(BIN)/liveedge -soak $(SOAK) $(SOAK_FLAGS)

# Runs every Fuzz* target of every package for FUZZTIME each, FUZZPARALLEL
# workers (default: one per core). A target that finds a crasher does not stop
# the others; the run fails at the end, and the crasher is left under the
# package's testdata/fuzz for `go test` to replay.
fuzz:
	@failed=""; \
	for pkg in $$($(GO) list -f '{{if or .TestGoFiles .XTestGoFiles}}{{.ImportPath}}{{end}}' ./...); do \
		list=$$($(GO) test -list '^Fuzz' $$pkg) || exit 1; \
		for fn in $$(printf '%s\n' "$$list" | grep '^Fuzz' || true); do \
			echo "== fuzz $$pkg $$fn ($(FUZZTIME)) $$(date -u +%H:%M:%S)"; \
			$(GO) test -run='^$$' -fuzz="^$$fn\$$" -fuzztime=$(FUZZTIME) -fuzzminimizetime=2s \
				$(if $(FUZZPARALLEL),-parallel=$(FUZZPARALLEL)) $$pkg || failed="$$failed $$fn"; \
		done; \
	done; \
	if [ -n "$$failed" ]; then echo "fuzz: crashers in:$$failed"; exit 1; fi

clean:
	rm -rf $(BIN) coverage.out coverage.html cover.out *.coverprofile
	rm -f *.test
