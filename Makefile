GO ?= go
FUZZTIME ?= 20s
BENCH_FLAGS ?= -kinds rtmp,hls,hls-ts
FAILOVER_FLAGS ?=

BIN := bin

# Third-party JavaScript of the player pages (npm, pinned; see static/vendor/README.md).
HLSJS_VERSION := 1.7.4
VENDOR := static/vendor
NPM ?= npm

.DEFAULT_GOAL := build

.PHONY: build vendor run tools test test-short bench bench-failover fuzz clean

build: vendor
	@mkdir -p $(BIN)
	$(GO) build -o $(BIN)/liveedge ./cmd/liveedge
	$(GO) build -o $(BIN)/liveedge-bench ./cmd/liveedge-bench

# hls.js for the player's LL-HLS fallback, from npm at HLSJS_VERSION, copied
# into static/vendor/ (git-ignored) before go:embed picks it up. It never
# fails the build: without npm or the registry, the page offers WebRTC only
# (and native HLS on Safari).
vendor:
	@if [ "$$(cat $(VENDOR)/hls.js.version 2>/dev/null)" = "$(HLSJS_VERSION)" ] && [ -s $(VENDOR)/hls.min.js ]; then \
		exit 0; \
	fi; \
	tmp=$$(mktemp -d); \
	if $(NPM) install --no-save --no-audit --no-fund --ignore-scripts --fetch-retries=1 --fetch-timeout=20000 \
			--prefix "$$tmp" hls.js@$(HLSJS_VERSION) >"$$tmp/npm.log" 2>&1 && \
		cp "$$tmp/node_modules/hls.js/dist/hls.min.js" $(VENDOR)/hls.min.js; then \
		echo "$(HLSJS_VERSION)" > $(VENDOR)/hls.js.version; \
		echo "vendor: hls.js $(HLSJS_VERSION) installed into $(VENDOR)/"; \
	else \
		rm -f $(VENDOR)/hls.min.js $(VENDOR)/hls.js.version; \
		echo "vendor: WARNING: could not install hls.js $(HLSJS_VERSION) from npm; the player page offers WebRTC only"; \
		tail -n 3 "$$tmp/npm.log" 2>/dev/null || true; \
	fi; \
	rm -rf "$$tmp"

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

bench: build tools
	./$(BIN)/liveedge-bench -server ./$(BIN)/liveedge $(BENCH_FLAGS)
	./$(BIN)/liveedge-bench -server ./$(BIN)/liveedge -failover 10 $(FAILOVER_FLAGS)

# Origin failover alone (about 1.5 min): two nginx-rtmp origins, the primary
# killed 10 times and frozen 3 times; the media gap one viewer sees.
bench-failover: build tools
	./$(BIN)/liveedge-bench -server ./$(BIN)/liveedge -failover 10 $(FAILOVER_FLAGS)

# Runs every Fuzz* target of every package for FUZZTIME each.
fuzz:
	@set -e; \
	for pkg in $$($(GO) list -f '{{if or .TestGoFiles .XTestGoFiles}}{{.ImportPath}}{{end}}' ./...); do \
		list=$$($(GO) test -list '^Fuzz' $$pkg); \
		for fn in $$(printf '%s\n' "$$list" | grep '^Fuzz' || true); do \
			echo "== fuzz $$pkg $$fn ($(FUZZTIME))"; \
			$(GO) test -run='^$$' -fuzz="^$$fn\$$" -fuzztime=$(FUZZTIME) $$pkg; \
		done; \
	done

clean:
	rm -rf $(BIN) coverage.out coverage.html cover.out *.coverprofile
	rm -f *.test
