# Sluice. `make demo` and `make test` are the README's first two commands.
GO       ?= go
BIN      ?= bin/sluice
PKGS     := ./...
BENCHTIME ?= 1x
COUNT    ?= 6

.PHONY: build demo test test-short lint bench bench-baseline chaos image clean

build:
	CGO_ENABLED=0 $(GO) build -trimpath -o $(BIN) .

demo: build
	$(BIN) demo

test: lint
	$(GO) test -count=1 -timeout 12m $(PKGS)

test-short:
	$(GO) test -short -count=1 $(PKGS)

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed on:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)

clean:
	rm -rf bin

# chaos is the long form of internal/chaos: >= 20 kill -9s, every fault point,
# three instances, failover/resume timings, a multi-GB backlog's peak RSS.
# It prints a summary table. (`make test` runs the short form.)
chaos:
	SLUICE_CHAOS=long $(GO) test -count=1 -timeout 60m -v -run . ./internal/chaos

# image packages the host-built static binary into a FROM scratch image
# (docker/Dockerfile.scratch): nothing is pulled, so it works offline. The
# build context is a temporary directory with only the binary, the passwd and
# group files and the host's CA bundle (a few MB, not the repository). Build
# from source instead with `docker build -f docker/Dockerfile .`.
IMAGE     ?= sluice:dev
CA_BUNDLE ?= /etc/ssl/certs/ca-certificates.crt
image: build
	@test -r $(CA_BUNDLE) || { echo "cannot read the CA bundle $(CA_BUNDLE); install ca-certificates or set CA_BUNDLE=FILE"; exit 1; }
	ctx=$$(mktemp -d) && trap 'rm -rf "$$ctx"' EXIT && \
	cp $(BIN) "$$ctx/sluice" && cp docker/rootfs/passwd docker/rootfs/group "$$ctx/" && \
	cp $(CA_BUNDLE) "$$ctx/ca-certificates.crt" && \
	docker build -f docker/Dockerfile.scratch -t $(IMAGE) "$$ctx"
