# The one place that holds hothost's build flags.
#
# Go plugins load only into a host built with exactly the same toolchain and
# flags (docs/WRITING-PLUGINS.md). Every go command below, and every
# command the tests start (the plugin build tool among them), inherits these
# through the environment, so host, plugins and test binaries always match.
export CGO_ENABLED := 1
export GOFLAGS := -trimpath
# Tests that build plugins read this to build them exactly like the host.
export HOTHOST_BUILD_FLAGS := $(GOFLAGS)

GO       ?= go
BIN      := $(CURDIR)/bin
PKGS     := ./...
# Packages whose tests never load a plugin: they also run under -race.
# (A plugin must be built with the same -race flag as its host.)
RACE_PKGS := ./shmpool/... ./state/... ./abi/... ./client/... ./stateless/... ./internal/crashmark/... ./ticket/...
STATICCHECK_VERSION := v0.8.2

.PHONY: all build test race bench demo run lint chaos fuzz clean chromium

all: build

build:
	@mkdir -p $(BIN)
	$(GO) build -o $(BIN)/ ./cmd/...

# The -race packages run beside the -race host's end-to-end tests, which
# spend much of their time waiting on real processes. Every end-to-end test
# runs against both hosts: each drives host code from several goroutines
# (the browser test's is the only push over a WebSocket, the Chromium
# dashboard's the only usage read under load); the package's unit tests
# repeat in a test binary that is not race-built, in well under a second.
test:
	$(GO) vet $(PKGS)
	$(GO) test -count=1 -timeout 9m $(PKGS)
	@log=$$(mktemp); \
	echo "$(GO) test -count=1 -race -timeout 9m $(RACE_PKGS) (beside the next; its output follows it)"; \
	$(GO) test -count=1 -race -timeout 9m $(RACE_PKGS) >$$log 2>&1 & race=$$!; \
	echo "HOTHOST_RACE_HOST=1 $(GO) test -count=1 -timeout 9m ./host/"; \
	HOTHOST_RACE_HOST=1 $(GO) test -count=1 -timeout 9m ./host/; host=$$?; \
	wait $$race; pkgs=$$?; cat $$log; rm -f $$log; \
	test $$host = 0 && test $$pkgs = 0
	$(MAKE) deploy-check

# Packages that never load a plugin run under -race; the end-to-end tests
# then run against a host (and plugins) built with -race.
race:
	$(GO) test -count=1 -race $(RACE_PKGS)
	HOTHOST_RACE_HOST=1 $(GO) test -count=1 ./host/

# Every benchmark of the project, then BENCHMARKS.md with ratios to the
# baselines measured in the same run.
bench: build
	scripts/bench

# Bounded chaos runs against the real host: swap storm, kill storm,
# bad-plugin storm, faults, client abuse. Prints a table; non-zero on any violation.
chaos: build
	$(GO) run ./examples/chaos

# Each fuzz target for a bounded time; crashers land in testdata as regression tests.
fuzz:
	scripts/fuzz

# The walk-through: builds host, hotctl and plugins, swaps coin v2 in under
# load, changes a price live, kill -9s the host, restarts it and rolls back.
demo:
	$(GO) run ./examples/demo

# The host alone on its defaults, with the example plugins, for nc and hotctl.
run: plugins
	@echo "log in with a ticket: nc 127.0.0.1 7070, then: login 42 \$$($(BIN)/hotctl ticket 42)"
	$(BIN)/hothost

# The example game's plugins, version 1.0.0 each, built by hhbuild for
# $(BIN)/hothost into $(PLUGIN_OUT): what the container image ships (see
# Dockerfile) and what the deploy tests load.
PLUGIN_OUT ?= plugins-dir
.PHONY: plugins deploy-check
plugins: build
	@mkdir -p $(PLUGIN_OUT)
	for p in coin/v1:coin shop:shop profile:profile social:social market:market town:town; do n=$${p##*:}; test -f $(PLUGIN_OUT)/$$n-1.0.0.so || \
	  $(BIN)/hhbuild -src plugins/$${p%%:*} -name $$n -version 1.0.0 -out $(PLUGIN_OUT) -like $(BIN)/hothost || exit 1; done

# The deployment files (Dockerfile, systemd units, Kubernetes manifests,
# Grafana dashboard) checked offline and against the real host; deploy/ is
# a module of its own so that its Kubernetes dependencies stay out of the host's.
deploy-check:
	cd deploy && $(GO) vet ./... && $(GO) test -count=1 -timeout 9m ./...

lint:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo 'gofmt: files above need formatting'; exit 1; }
	$(GO) vet $(PKGS)
	@command -v staticcheck >/dev/null 2>&1 || $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)
	PATH="$$PATH:$$($(GO) env GOPATH)/bin" staticcheck $(PKGS)

# The dashboard's test drives Debian's headless chromium (through chromedp):
# installed here when missing, for .ci/run and for a fresh machine.
chromium:
	@command -v chromium >/dev/null || { apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y chromium; }

clean:
	rm -rf $(BIN) bench.out
