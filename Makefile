# tailcar: `make demo` shows it working, `make test` proves it.
GO      ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT  ?= $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
LDFLAGS := -s -w -X main.version=$(VERSION) -X main.commit=$(COMMIT)

# Test servers are pinned and cached under a path this Makefile owns.
CACHE      := $(CURDIR)/.cache
VL_VERSION := v1.52.1
VL_BIN     := $(CACHE)/bin/victoria-logs-$(VL_VERSION)

.PHONY: all build demo test deps vet fmt-check clean nxadm-verdict bench

all: build

## build: the static tailcar binary and the log generator, in bin/
build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "$(LDFLAGS)" -o bin/tailcar .
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "-s -w" -o bin/loggen ./examples/loggen

## demo: loggen writes nginx lines to a temp dir; tailcar ships them to stdout with tags
demo: build
	@sh examples/demo.sh

## test: vet, gofmt, and every test with the race detector, after installing what they need
test: deps vet fmt-check
	TAILCAR_VICTORIALOGS=$(VL_BIN) $(GO) test -race -count=1 -timeout 20m ./...

vet:
	$(GO) vet ./...

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

## deps: apt packages (logrotate) and pinned test servers (VictoriaLogs)
deps: $(VL_BIN)
	@command -v logrotate >/dev/null 2>&1 || { \
	  echo "installing logrotate"; \
	  SUDO=$$( [ "$$(id -u)" -eq 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && $$SUDO DEBIAN_FRONTEND=noninteractive apt-get install -y -qq logrotate >/dev/null; }

$(VL_BIN):
	@echo "building VictoriaLogs $(VL_VERSION) (once; cached in $(CACHE))"
	@mkdir -p $(CACHE)/bin $(CACHE)/vl-build
	GOBIN=$(CACHE)/vl-build $(GO) install github.com/VictoriaMetrics/VictoriaLogs/app/victoria-logs@$(VL_VERSION)
	mv $(CACHE)/vl-build/victoria-logs $@

## bench: W1 throughput vs the floor, W2 many files, W3 idle (metrics off and on), stop time; prints a table, never fails on speed
bench: build
	$(GO) build -o bin/floor ./bench/floor
	$(GO) build -o bin/benchrun ./bench/run
	$(GO) test -run '^$$' -bench . -benchtime 20x ./tailer ./enrich ./ship
	./bin/benchrun -tailcar bin/tailcar -floor bin/floor

## nxadm-verdict: measure nxadm/tail on our rotation scenarios (evidence, not a test)
nxadm-verdict:
	cd bench/nxadm && $(GO) run . -runs 2

clean:
	rm -rf bin
