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
