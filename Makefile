# docker-credential-cgr — see README.md. Every target works on a fresh
# machine with Go installed; `make e2e` also needs the packages .ci/run installs.

GO      ?= go
# What `version` prints for make build: git describe (a tag, or the short
# commit when there is none; -dirty for uncommitted changes), the full
# commit, and the commit's time. Without git all three are empty and the
# binary falls back to what go recorded (cmd/docker-credential-cgr/version.go).
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null)
COMMIT  ?= $(shell git rev-parse HEAD 2>/dev/null)
DATE    ?= $(shell TZ=UTC git log -1 --format=%cd --date=format-local:%Y-%m-%dT%H:%M:%SZ 2>/dev/null)
LDFLAGS := -s -w -X main.version=$(VERSION) -X main.commit=$(COMMIT) -X main.date=$(DATE)
BIN     := bin/docker-credential-cgr

# golangci-lint, pinned: .ci/run installs exactly this version.
GOLANGCI_LINT_VERSION := v2.15.0
GOLANGCI_LINT_PKG     := github.com/golangci/golangci-lint/v2/cmd/golangci-lint
GOLANGCI_LINT         ?= golangci-lint
# Where go install puts it, on PATH for the lint recipes.
LINT_PATH             = PATH="$$($(GO) env GOPATH | cut -d: -f1)/bin:$$PATH"; export PATH

# goreleaser, pinned like golangci-lint: release-snapshot installs exactly this version.
GORELEASER_VERSION := v2.15.1
GORELEASER_PKG     := github.com/goreleaser/goreleaser/v2

.PHONY: build test demo lint fuzz bench clean

## build: the static, stripped binary in bin/
build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/docker-credential-cgr

## test: unit and integration tests (the integration tests build the binary and run it); then
## test/kubelet-config's modules, one per supported kubelet release (v1_33 ... v1_37), each
## decoding configure-kubelet's configs strictly with that release's own k8s.io/kubelet types
## (seconds each once compiled); then test/kubelet, its own module, where the newest kubelet's
## plugin code drives the binary (the first run downloads and compiles k8s.io/kubernetes: over
## 10 minutes on 2 cores). -count=1 in those modules because the binary and the golden files lie
## outside them, where go test's cache cannot see them change. test/kubelet builds with the flags
## test/cluster/build-kube.sh builds the kubelet with (CGO_ENABLED=0 -trimpath), and build-kube.sh
## builds kube-apiserver and the kubelet in test/kubelet's module (its tools.go names them), so on
## a cold machine the k8s.io packages they share are compiled once, from the same module versions.
test:
	$(GO) test -race -count=1 ./...
	for m in test/kubelet-config/v1_*/; do echo "== $$m"; (cd $$m && $(GO) test -count=1 ./...) || exit 1; done
	cd test/kubelet && CGO_ENABLED=0 $(GO) test -trimpath -count=1 ./...

## demo: the whole flow in a local sandbox, offline, through the built binary
demo: build
	$(GO) run ./internal/demo -helper $(BIN)

## lint: no executable tracked in git (.ci/check-tracked), gofmt, go vet (also for windows and
## darwin, and with the e2e, e2ekubelet and release tags), then golangci-lint at the pinned version with .golangci.yml.
## The windows and darwin vets build with release-snapshot's flags (cgo off, -trimpath), so after
## a snapshot they reuse its compiled packages: 32 s each instead of 60 with a cold build cache.
## .ci/run installs golangci-lint; elsewhere, `make lint` says how.
lint:
	.ci/check-tracked
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) vet -tags e2e ./test/e2e/
	$(GO) vet -tags e2ekubelet ./test/cluster/
	$(GO) vet -tags release ./test/release/
	GOOS=windows CGO_ENABLED=0 $(GO) vet -trimpath ./...
	GOOS=darwin CGO_ENABLED=0 $(GO) vet -trimpath ./...
	@$(LINT_PATH); v=$$($(GOLANGCI_LINT) version --short 2>/dev/null) || { \
		echo "golangci-lint is not installed. Install the pinned version with:"; \
		echo "  go install $(GOLANGCI_LINT_PKG)@$(GOLANGCI_LINT_VERSION)"; exit 1; }; \
	if [ "v$$v" != "$(GOLANGCI_LINT_VERSION)" ]; then \
		echo "golangci-lint is v$$v, this repository pins $(GOLANGCI_LINT_VERSION) (findings differ between versions). Install it with:"; \
		echo "  go install $(GOLANGCI_LINT_PKG)@$(GOLANGCI_LINT_VERSION)"; exit 1; fi
	@$(LINT_PATH); set -x; $(GOLANGCI_LINT) run ./...

## lint-kubelet: golangci-lint over test/kubelet, its own module. Not part of lint or CI:
## type-checking it needs k8s.io/kubernetes compiled (minutes on 2 cores; fast after make test).
.PHONY: lint-kubelet
lint-kubelet:
	@$(LINT_PATH); cd test/kubelet && $(GOLANGCI_LINT) run ./...

## fuzz: a short, count-bounded run of every fuzz target (seed corpora live in testdata/fuzz).
## CI runs it as is; for a long local run: make fuzz FUZZTIME=1000000x
FUZZTIME ?= 20000x
fuzz:
	$(GO) test -run='^$$' -fuzz='^FuzzNormalizeHost$$' -fuzztime=$(FUZZTIME) ./pkg/creds/
	$(GO) test -run='^$$' -fuzz='^FuzzRegistryMatch$$' -fuzztime=$(FUZZTIME) ./pkg/creds/
	$(GO) test -run='^$$' -fuzz='^FuzzParseAmbientToken$$' -fuzztime=$(FUZZTIME) ./pkg/creds/
	$(GO) test -run='^$$' -fuzz='^FuzzLoadConfig$$' -fuzztime=$(FUZZTIME) ./pkg/creds/
	$(GO) test -run='^$$' -fuzz='^FuzzParseEntryAgreesWithJSON$$' -fuzztime=$(FUZZTIME) ./pkg/creds/
	$(GO) test -run='^$$' -fuzz='^FuzzAppendEntryIsJSONMarshal$$' -fuzztime=$(FUZZTIME) ./pkg/creds/
	$(GO) test -run='^$$' -fuzz='^FuzzParseResponse$$' -fuzztime=$(FUZZTIME) ./pkg/exchange/
	$(GO) test -run='^$$' -fuzz='^FuzzParseClaimsAgreesWithRegisteredClaims$$' -fuzztime=$(FUZZTIME) ./pkg/exchange/
	$(GO) test -run='^$$' -fuzz='^FuzzParseClaimsAgreesWithParseUnverified$$' -fuzztime=$(FUZZTIME) ./pkg/exchange/
	$(GO) test -run='^$$' -fuzz='^FuzzParseClaimsRawAgreesWithParseUnverified$$' -fuzztime=$(FUZZTIME) ./pkg/exchange/
	$(GO) test -run='^$$' -fuzz='^FuzzParseError$$' -fuzztime=$(FUZZTIME) ./pkg/exchange/
	$(GO) test -run='^$$' -fuzz='^FuzzExchangeAnswer$$' -fuzztime=$(FUZZTIME) ./pkg/exchange/
	$(GO) test -run='^$$' -fuzz='^FuzzServeGetIsCredentialsServe$$' -fuzztime=$(FUZZTIME) ./cmd/docker-credential-cgr/
	$(GO) test -run='^$$' -fuzz='^FuzzReadRequest$$' -fuzztime=$(FUZZTIME) ./pkg/kubelet/
	$(GO) test -run='^$$' -fuzz='^FuzzServe$$' -fuzztime=$(FUZZTIME) ./pkg/kubelet/
	$(GO) test -run='^$$' -fuzz='^FuzzAppendResponseIsJSONMarshal$$' -fuzztime=$(FUZZTIME) ./pkg/kubelet/
	$(GO) test -run='^$$' -fuzz='^FuzzAppendIsEncodingJSON$$' -fuzztime=$(FUZZTIME) ./internal/jsonstr/
	$(GO) test -run='^$$' -fuzz='^FuzzAddHelpers$$' -fuzztime=$(FUZZTIME) ./pkg/dockerconfig/
	$(GO) test -run='^$$' -fuzz='^FuzzSetSettings$$' -fuzztime=$(FUZZTIME) ./pkg/dockerconfig/

## bench: Go benchmarks plus whole-process timings (internal/procbench) beside the floors and the
## peers below, built once with go install at pinned versions like ours (stripped, cgo off) into
## BENCH_CACHE; rewrites docs/benchmarks.md's generated section and docs/benchmarks.svg
GCR_HELPER_PKG     := github.com/GoogleCloudPlatform/docker-credential-gcr/v2
GCR_HELPER_VERSION := v2.2.1
ECR_HELPER_PKG     := github.com/awslabs/amazon-ecr-credential-helper/ecr-login/cli/docker-credential-ecr-login
ECR_HELPER_VERSION := v0.12.0
BENCH_CACHE        ?= $(HOME)/.cache/docker-credential-cgr/bench-peers
GCR_HELPER         := $(BENCH_CACHE)/gcr-$(GCR_HELPER_VERSION)/docker-credential-gcr
ECR_HELPER         := $(BENCH_CACHE)/ecr-$(ECR_HELPER_VERSION)/docker-credential-ecr-login
bench: build
	$(GO) test -run='^$$' -bench=. -benchmem ./...
	GOBIN=$(dir $(GCR_HELPER)) CGO_ENABLED=0 $(GO) install -trimpath -ldflags='-s -w' $(GCR_HELPER_PKG)@$(GCR_HELPER_VERSION)
	GOBIN=$(dir $(ECR_HELPER)) CGO_ENABLED=0 $(GO) install -trimpath -ldflags='-s -w' $(ECR_HELPER_PKG)@$(ECR_HELPER_VERSION)
	$(GO) run ./internal/procbench -helper $(BIN) -peer docker-credential-gcr=$(GCR_HELPER) \
		-peer amazon-ecr-credential-helper=$(ECR_HELPER) -json bin/bench.json -doc docs/benchmarks.md -svg docs/benchmarks.svg

## e2e: real crane, skopeo and docker (through a dockerd the suite starts) pull through the built
## binary from a real token-auth distribution registry; test/e2e/install.sh installs the components
.PHONY: e2e
e2e: build
	PATH="$$($(GO) env GOPATH | cut -d: -f1)/bin:$$PATH" CGR_E2E_HELPER="$(CURDIR)/$(BIN)" \
		$(GO) test -tags e2e -count=1 -v -timeout 15m ./test/e2e/

## e2e-kubelet: a real single-node cluster on loopback (etcd, kube-apiserver with Node,RBAC and
## NodeRestriction, containerd, kubelet) pulls from a real token-auth distribution registry through
## the built binary as the kubelet's credential provider, in node and service-account mode, with
## the config and RBAC configure-kubelet prints; then it runs the README's pod section as written.
## Needs root. test/cluster/install.sh installs the Debian packages and builds kube-apiserver and
## kubelet $(KUBE_VERSION) into KUBE_CACHE once (about 8-10 minutes on 2 cores; later runs reuse
## them). The release is the one test/kubelet's go.mod pins, so that one `go get` there moves the
## cluster's kubelet and the plugin code make test drives together.
KUBE_VERSION ?= $(shell bash test/cluster/build-kube.sh --pinned)
KUBE_CACHE   ?= $(HOME)/.cache/docker-credential-cgr/kube-$(KUBE_VERSION)
.PHONY: e2e-kubelet
e2e-kubelet: build
	KUBE_VERSION=$(KUBE_VERSION) bash test/cluster/install.sh "$(KUBE_CACHE)"
	CGR_KUBE_BIN="$(KUBE_CACHE)" CGR_E2E_HELPER="$(CURDIR)/$(BIN)" \
		$(GO) test -tags e2ekubelet -count=1 -v -timeout 25m ./test/cluster/

## release-snapshot: what a release would publish, built locally into dist/ (.goreleaser.yaml):
## six archives and checksums.txt, versioned like 0.0.1-SNAPSHOT-<commit>[-dirty], never
## published. Installs goreleaser $(GORELEASER_VERSION) with go install when it is missing or
## another version (the only network use, through the module proxy); the build itself runs with
## GOPROXY=off, so it uses only modules already downloaded (go mod download first). In a
## checkout with no git remote (a local clone, a worktree) goreleaser's snapshot would drop every
## git fact (commit "none", no date), so git's environment config names the project's URL for
## that run only: nothing is written, and ls-remote --get-url makes no connection.
.PHONY: release-snapshot release-check release-test goreleaser
release-snapshot: goreleaser
	$(GO) mod download
	@$(LINT_PATH); \
	if [ -z "$$(git remote)" ]; then \
		export GIT_CONFIG_COUNT=1 GIT_CONFIG_KEY_0=remote.origin.url GIT_CONFIG_VALUE_0=https://github.com/cgr-helper/docker-credential-cgr.git; fi; \
	set -x; GOPROXY=off goreleaser release --snapshot --clean

## release-check: goreleaser's own validation of .goreleaser.yaml (a deprecated field fails too)
release-check: goreleaser
	@$(LINT_PATH); set -x; goreleaser check

## release-test: test/release (build tag release) checks what release-snapshot left in dist/:
## checksums.txt and the six archives under the README's names, each holding the binary, README,
## LICENSE and docs as in the tree, dated at the commit; every binary built as .goreleaser.yaml
## says; the linux/amd64 binary's `version` and a `get` against the sandbox; and no build output
## tracked in git. Seconds; run make release-snapshot first.
release-test:
	$(GO) test -tags release -count=1 -v ./test/release/

# goreleaser installs the pinned goreleaser into GOPATH/bin unless it is already there. Linked
# without symbols or DWARF, which takes 7 s instead of 17 on 2 cores.
goreleaser:
	@$(LINT_PATH); v=$$(goreleaser --version 2>/dev/null | sed -n 's/^GitVersion: *//p'); \
	if [ "$$v" = "$(GORELEASER_VERSION)" ]; then echo "goreleaser $(GORELEASER_VERSION) already installed"; exit 0; fi; \
	echo "goreleaser is $${v:-missing}; installing $(GORELEASER_VERSION) (compiling it takes minutes)"; \
	set -x; GOBIN="$$($(GO) env GOPATH | cut -d: -f1)/bin" $(GO) install -ldflags='-s -w' $(GORELEASER_PKG)@$(GORELEASER_VERSION)

clean:
	rm -rf bin dist
