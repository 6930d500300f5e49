# docker-credential-cgr — see README.md. Every target works on a fresh
# machine with Go installed; `make e2e` also needs the packages .ci/run installs.

GO      ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X main.version=$(VERSION)
BIN     := bin/docker-credential-cgr

.PHONY: build test demo lint fuzz bench clean

## build: the static, stripped binary in bin/
build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/docker-credential-cgr

## test: unit and integration tests (the integration tests build the binary and run it), then
## test/kubelet, its own module, where the kubelet's plugin code drives the binary (the first run
## downloads and compiles k8s.io/kubernetes: about 3 minutes on 2 cores). -count=1 there because
## the binary it builds lies outside that module, where go test's cache cannot see it change.
test:
	$(GO) test -race -count=1 ./...
	cd test/kubelet && $(GO) test -count=1 ./...

## demo: the whole flow in a local sandbox, offline, through the built binary
demo: build
	$(GO) run ./internal/demo -helper $(BIN)

## lint: gofmt and go vet must be silent
lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) vet -tags e2e ./test/e2e/

## fuzz: a short, count-bounded run of every fuzz target (seed corpora live in testdata/fuzz)
fuzz:
	$(GO) test -run='^$$' -fuzz=FuzzNormalizeHost -fuzztime=200000x ./pkg/creds/
	$(GO) test -run='^$$' -fuzz=FuzzParseResponse -fuzztime=200000x ./pkg/exchange/
	$(GO) test -run='^$$' -fuzz=FuzzParseError -fuzztime=200000x ./pkg/exchange/
	$(GO) test -run='^$$' -fuzz='^FuzzExchangeAnswer$$' -fuzztime=20000x ./pkg/exchange/
	$(GO) test -run='^$$' -fuzz='^FuzzRegistryMatch$$' -fuzztime=20000x ./pkg/creds/
	$(GO) test -run='^$$' -fuzz='^FuzzParseAmbientToken$$' -fuzztime=20000x ./pkg/creds/
	$(GO) test -run='^$$' -fuzz='^FuzzLoadConfig$$' -fuzztime=20000x ./pkg/creds/
	$(GO) test -run='^$$' -fuzz='^FuzzReadRequest$$' -fuzztime=20000x ./pkg/kubelet/
	$(GO) test -run='^$$' -fuzz='^FuzzServe$$' -fuzztime=20000x ./pkg/kubelet/

## bench: Go benchmarks plus whole-process timings; numbers go in docs/benchmarks.md
bench: build
	$(GO) test -run='^$$' -bench=. -benchmem ./...
	$(GO) run ./internal/procbench -helper $(BIN)

## e2e: real crane, skopeo and docker (through a dockerd the suite starts) pull through the built
## binary from a real token-auth distribution registry; test/e2e/install.sh installs the components
.PHONY: e2e
e2e: build
	PATH="$$($(GO) env GOPATH | cut -d: -f1)/bin:$$PATH" CGR_E2E_HELPER="$(CURDIR)/$(BIN)" \
		$(GO) test -tags e2e -count=1 -v -timeout 15m ./test/e2e/

clean:
	rm -rf bin
