GO ?= go
FUZZTIME ?= 20s
BENCH_FLAGS ?= -kinds rtmp,hls,hls-ts
FAILOVER_FLAGS ?=

BIN := bin

.DEFAULT_GOAL := build

.PHONY: build run tools test test-short bench bench-failover fuzz clean

build:
	@mkdir -p $(BIN)
	$(GO) build -o $(BIN)/liveedge ./cmd/liveedge
	$(GO) build -o $(BIN)/liveedge-bench ./cmd/liveedge-bench

# No arguments: embedded default config, serving the demo stream live/demo.
run: build
	@echo "play: ffplay rtmp://127.0.0.1/live/demo"
	./$(BIN)/liveedge

# External test peers (ffmpeg, nginx + RTMP module, chromium).
tools:
	bash .ci/install-tools.sh

test: tools
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
