# tailcar: `make demo` shows it working, `make test` proves it.
GO      ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT  ?= $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
LDFLAGS := -s -w -X main.version=$(VERSION) -X main.commit=$(COMMIT)

# Test servers are pinned and cached under a path this Makefile owns.
CACHE      := $(CURDIR)/.cache
VL_VERSION := v1.52.1
VL_BIN     := $(CACHE)/bin/victoria-logs-$(VL_VERSION)
# The Collector's core and contrib modules share this version.
OTELCOL_VERSION := v0.161.0
OTELCOL_BIN     := $(CACHE)/bin/otelcol-tailcar-$(OTELCOL_VERSION)

# Containers: podman with the settings that work on these machines.
PODMAN      := CONTAINERS_CONF=$(CURDIR)/examples/container/containers.conf podman
# Tagged by go.sum: a new dependency needs a new module cache in the image.
BUILDER     := localhost/tailcar-builder:$(shell sha256sum go.sum | cut -c1-12)
BUILDER_CTX := $(CACHE)/builder
GOROOT_DIR  := $(shell $(GO) env GOROOT)
HOST_MODS   := $(shell $(GO) env GOMODCACHE)

.PHONY: all build demo test deps vet fmt-check clean nxadm-verdict bench image image-deps builder-image e2e

all: build

## build: the static tailcar binary and the log generator, in bin/
build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "$(LDFLAGS)" -o bin/tailcar .
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "-s -w" -o bin/loggen ./examples/loggen

## demo: loggen writes nginx lines to a temp dir; tailcar parses them and ships them to stdout with tags
demo: build
	@sh examples/demo.sh

## test: vet, gofmt, every test with the race detector, then the container end-to-end tests
test: deps vet fmt-check
	TAILCAR_VICTORIALOGS=$(VL_BIN) TAILCAR_OTELCOL=$(OTELCOL_BIN) $(GO) test -race -count=1 -timeout 20m ./...
	$(GO) test -count=1 -run 'Allocat|NoAlloc' ./...
	$(MAKE) e2e

vet:
	$(GO) vet ./...

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

## deps: apt packages (logrotate, nginx) and pinned test servers (VictoriaLogs, an OpenTelemetry Collector)
deps: $(VL_BIN) $(OTELCOL_BIN)
	@sh .ci/apt-need logrotate=logrotate /usr/sbin/nginx=nginx-light

$(VL_BIN):
	@echo "building VictoriaLogs $(VL_VERSION) (once; cached in $(CACHE))"
	@mkdir -p $(CACHE)/bin $(CACHE)/vl-build
	GOBIN=$(CACHE)/vl-build $(GO) install github.com/VictoriaMetrics/VictoriaLogs/app/victoria-logs@$(VL_VERSION)
	mv $(CACHE)/vl-build/victoria-logs $@

$(OTELCOL_BIN): .ci/otelcol-builder.yaml
	@echo "building an OpenTelemetry Collector $(OTELCOL_VERSION) with the official builder (once; cached in $(CACHE))"
	@mkdir -p $(CACHE)/bin $(CACHE)/otelcol-build
	GOBIN=$(CACHE)/otelcol-build $(GO) install go.opentelemetry.io/collector/cmd/builder@$(OTELCOL_VERSION)
	sed -e 's|@OUTPUT@|$(CACHE)/otelcol-build/dist|' -e 's|@VERSION@|$(OTELCOL_VERSION)|g' .ci/otelcol-builder.yaml > $(CACHE)/otelcol-build/manifest.yaml
	$(CACHE)/otelcol-build/builder --config $(CACHE)/otelcol-build/manifest.yaml
	mv $(CACHE)/otelcol-build/dist/otelcol-tailcar $@

## bench: W1 throughput vs the floor, W2 many files, W0 no lines, W3 idle (metrics off and on), stop time; prints a table in about 3 minutes, never fails on speed
bench: build
	$(GO) build -o bin/floor ./bench/floor
	$(GO) build -o bin/benchrun ./bench/run
	$(GO) test -run '^$$' -bench . -benchtime 20x ./tailer ./enrich ./ship
	./bin/benchrun -tailcar bin/tailcar -floor bin/floor

## nxadm-verdict: measure nxadm/tail on our rotation scenarios (evidence, not a test)
nxadm-verdict:
	cd bench/nxadm && $(GO) run . -runs 2

## image: localhost/tailcar:dev and localhost/tailcar-loggen:dev from the standard Dockerfile, offline
image: builder-image
	$(PODMAN) build --pull=never --build-arg GO_IMAGE=$(BUILDER) --build-arg VERSION=$(VERSION) \
	  --build-arg COMMIT=$(COMMIT) -t localhost/tailcar:dev .
	$(PODMAN) build --pull=never --build-arg GO_IMAGE=$(BUILDER) --target loggen -t localhost/tailcar-loggen:dev .

image-deps:
	@sh .ci/apt-need podman=podman runc=runc /bin/busybox=busybox-static

# The golang image cannot be pulled here: build a stand-in from the host's
# Go toolchain and module cache (examples/container/builder.Containerfile).
builder-image: image-deps
	@if ! $(PODMAN) image exists $(BUILDER); then \
	  set -e; rm -rf $(BUILDER_CTX); mkdir -p $(BUILDER_CTX); \
	  cp /bin/busybox $(BUILDER_CTX)/busybox; \
	  cp /etc/ssl/certs/ca-certificates.crt $(BUILDER_CTX)/; \
	  cp -a $(GOROOT_DIR) $(BUILDER_CTX)/go; \
	  rm -rf $(BUILDER_CTX)/go/test $(BUILDER_CTX)/go/doc $(BUILDER_CTX)/go/api $(BUILDER_CTX)/go/pkg/*/cmd; \
	  GOMODCACHE=$(BUILDER_CTX)/mod GOFLAGS=-mod=mod GOPROXY=file://$(HOST_MODS)/cache/download,$$($(GO) env GOPROXY) \
	    $(GO) mod download; \
	  chmod -R u+w $(BUILDER_CTX); \
	  $(PODMAN) build --pull=never -t $(BUILDER) -f examples/container/builder.Containerfile $(BUILDER_CTX); \
	  rm -rf $(BUILDER_CTX); \
	fi

## e2e: the image and the examples in a real container runtime (podman)
e2e: image
	TAILCAR_PODMAN_E2E=1 TAILCAR_BUILDER_IMAGE=$(BUILDER) CONTAINERS_CONF=$(CURDIR)/examples/container/containers.conf \
	  $(GO) test -count=1 -timeout 15m -run 'TestContainer' -v ./examples/

clean:
	rm -rf bin
