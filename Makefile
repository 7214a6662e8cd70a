# The one place that holds hothost's build flags.
#
# Go plugins load only into a host built with exactly the same toolchain and
# flags (see ../shared/FIELD-NOTES.md). Every go command below, and every
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
RACE_PKGS := ./shmpool/... ./state/... ./abi/... ./client/... ./stateless/... ./internal/crashmark/...
STATICCHECK_VERSION := v0.8.2

.PHONY: all build test race bench demo run lint chaos fuzz clean chromium

all: build

build:
	@mkdir -p $(BIN)
	$(GO) build -o $(BIN)/ ./cmd/...

test:
	$(GO) vet $(PKGS)
	$(GO) test -count=1 -timeout 9m $(PKGS)
	$(GO) test -count=1 -race -timeout 9m $(RACE_PKGS)
	HOTHOST_RACE_HOST=1 $(GO) test -count=1 -timeout 9m ./host/

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
run: build
	@mkdir -p plugins-dir
	for p in coin/v1:coin shop:shop profile:profile; do n=$${p##*:}; test -f plugins-dir/$$n-1.0.0.so || \
	  $(BIN)/hhbuild -src plugins/$${p%%:*} -name $$n -version 1.0.0 -out plugins-dir -like $(BIN)/hothost || exit 1; done
	$(BIN)/hothost

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
