# Sluice. `make demo` and `make test` are the README's first two commands.
GO       ?= go
BIN      ?= bin/sluice
PKGS     := ./...
BENCHTIME ?= 1x
COUNT    ?= 6

.PHONY: build demo test test-short lint bench bench-baseline report chaos image clean

# VERSION and REVISION are stamped into the binary (internal/buildinfo):
# `sluice version` prints them and /metrics exports sluice_build_info.
# Outside a git checkout VERSION is dev and the revision is unknown.
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
REVISION ?= $(shell git rev-parse HEAD 2>/dev/null)
LDFLAGS  := -X github.com/sluice-dev/sluice/internal/buildinfo.version=$(VERSION) \
            -X github.com/sluice-dev/sluice/internal/buildinfo.revision=$(REVISION)

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "$(LDFLAGS)" -o $(BIN) .

demo: build
	$(BIN) demo

# RACE_PKGS run again under the race detector when a C compiler is there
# (the detector needs cgo). loadgen is left out (minutes under it) and so is
# internal/chaos (its appliances are separate processes).
RACE_PKGS := ./batching ./codec ./copy ./ingest ./bench ./internal/kafkaauth

test: lint
	$(GO) test -count=1 -timeout 12m $(PKGS)
	$(GO) test -count=1 -tags sluicefault -run Fault ./copy
	@if command -v gcc >/dev/null 2>&1; then \
		echo "$(GO) test -race -count=1 $(RACE_PKGS)"; \
		CGO_ENABLED=1 $(GO) test -race -count=1 -timeout 10m $(RACE_PKGS); \
	else \
		echo "no C compiler (gcc): the race detector run is skipped"; \
	fi

test-short:
	$(GO) test -short -count=1 $(PKGS)

# lint: gofmt, go.mod and go.sum tidy, go vet and staticcheck, each also
# over the sluicefault build (copy/fault.go). staticcheck is installed into
# GOPATH/bin when neither PATH nor GOPATH/bin has it; STATICCHECK_VERSION is
# a release that supports Go 1.26.
STATICCHECK_VERSION ?= v0.8.2
STATICCHECK ?= $(shell command -v staticcheck 2>/dev/null || echo $$($(GO) env GOPATH)/bin/staticcheck)
lint: $(STATICCHECK)
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed on:"; echo "$$out"; exit 1; fi
	@$(GO) mod tidy -diff || { echo "go.mod or go.sum is not tidy: run go mod tidy"; exit 1; }
	$(GO) vet $(PKGS)
	$(GO) vet -tags sluicefault ./copy ./internal/chaos
	$(STATICCHECK) $(PKGS)
	$(STATICCHECK) -tags sluicefault ./copy ./internal/chaos

$(STATICCHECK):
	$(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)

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
# from source instead with `docker build -f docker/Dockerfile .` (pass
# --build-arg VERSION=... --build-arg REVISION=...: the context has no .git).
IMAGE     ?= sluice:dev
CA_BUNDLE ?= /etc/ssl/certs/ca-certificates.crt
image: build
	@test -r $(CA_BUNDLE) || { echo "cannot read the CA bundle $(CA_BUNDLE); install ca-certificates or set CA_BUNDLE=FILE"; exit 1; }
	ctx=$$(mktemp -d) && trap 'rm -rf "$$ctx"' EXIT && \
	cp $(BIN) "$$ctx/sluice" && cp docker/rootfs/passwd docker/rootfs/group "$$ctx/" && \
	cp $(CA_BUNDLE) "$$ctx/ca-certificates.crt" && \
	docker build -f docker/Dockerfile.scratch --build-arg VERSION=$(VERSION) --build-arg REVISION=$(REVISION) -t $(IMAGE) "$$ctx"

# Micro benchmarks (codec, batching, copy framing, loadgen generator; the
# PostgreSQL-backed copy benchmarks are excluded by BENCH_COPY) compared by
# benchstat against bench/baseline.txt. Fails on a significant regression:
# more than BENCH_MAX_SLOWDOWN sec/op, or any allocation where the baseline
# had none. Refresh the baseline on a quiet machine with `make bench-baseline`
# and commit it.
BENCHSTAT          ?= $(shell command -v benchstat 2>/dev/null || echo $$(go env GOPATH)/bin/benchstat)
BENCH_PKGS         := ./codec ./batching ./copy ./loadgen
BENCH_COPY         := ^Benchmark(Framing|CopyReader|Prepare|TupleReader|Claim|KeyFilterLookup|ResolveOps)$$
BENCH_MAX_SLOWDOWN ?= 0.15
# The decoders' benchmarks whose instructions per op `make bench` counts
# under callgrind (bench/instrcheck) and judges on any machine: more than
# 3% over bench/instructions.txt fails, when the same Go toolchain counted
# both.
BENCH_INSTR        := BenchmarkDecodeReferenceEvent,BenchmarkDecodeAvroReferenceEvent,BenchmarkDecodeProtobufReferenceEvent,BenchmarkDebeziumReferenceChange,BenchmarkDecodeAvroKeyedEvent
# The "machine:" line heads a run: the CPU's model name, family, model
# and stepping, cache size and bogomips (twice the clock the kernel
# measured at boot; steady, unlike "cpu MHz" under frequency scaling), and
# the CPU count. Go's own "cpu:" line is the model name alone, which two
# VMs three times apart in speed were seen to share.
bench-run:
	@mkdir -p bin
	@echo "machine: $$(awk -F'\t*: *' '/^(model name|cpu family|model|stepping|cache size|bogomips)\t/ && !seen[$$1]++ {printf "%s%s", s, $$2; s=", "}' /proc/cpuinfo 2>/dev/null), $$(nproc 2>/dev/null) CPUs" > bin/bench-new.txt
	$(GO) test -run '^$$' -bench . -benchmem -count $(COUNT) ./codec ./batching ./loadgen >> bin/bench-new.txt
	$(GO) test -run '^$$' -bench '$(BENCH_COPY)' -benchmem -count $(COUNT) ./copy >> bin/bench-new.txt

$(BENCHSTAT):
	$(GO) install golang.org/x/perf/cmd/benchstat@latest

# A baseline from another machine (its "machine:" lines differ, or it has
# none) is compared for allocations only: its times say nothing about this
# machine's.
bench: $(BENCHSTAT) bench-run
	$(BENCHSTAT) -ignore cpu,machine bench/baseline.txt bin/bench-new.txt
	@base=$$(grep -m1 '^machine:' bench/baseline.txt); new=$$(grep -m1 '^machine:' bin/bench-new.txt); only=; \
	if [ "$$base" != "$$new" ]; then \
		b=$${base#machine: }; echo "bench: the baseline ran on another machine ($${b:-its machine not recorded}, here $${new#machine: }): judging allocations only; refresh it here with make bench-baseline"; \
		only=-allocs-only; \
	fi; \
	$(BENCHSTAT) -ignore cpu,machine -format csv bench/baseline.txt bin/bench-new.txt 2>/dev/null | $(GO) run ./bench/benchcheck -max-slowdown $(BENCH_MAX_SLOWDOWN) $$only
	$(GO) run ./bench/instrcheck -pkg ./codec -bench $(BENCH_INSTR) -baseline bench/instructions.txt

bench-baseline: bench-run
	cp bin/bench-new.txt bench/baseline.txt
	@echo "bench/baseline.txt refreshed; commit it"
	$(GO) run ./bench/instrcheck -pkg ./codec -bench $(BENCH_INSTR) -baseline bench/instructions.txt -update

# The capacity report (a few minutes): bench/report/report.md with SVG charts.
report: build
	$(BIN) report --out bench/report
