# Latchkey. `make run` starts the whole suite; `make test` runs every test against the local
# Postgres and NATS. Tools are pinned in deploy/tools/**/go.mod and built into .cache/bin.
SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := build

TOOLS := $(CURDIR)/.cache/bin
export PATH := $(TOOLS):$(PATH)
GOOGLEAPIS_VERSION := v1.16.0
GOOGLEAPIS := $(CURDIR)/.cache/googleapis/google/api
# ./pkg/... stops at a nested module: pkg/sender (its own go.mod, for the OpenTelemetry
# exporters) is named on its own.
MODULES := ./gen/... ./pkg/... ./pkg/sender/... ./services/accounts/... ./services/keys/... ./services/ingest-gateway/... ./services/audit/... ./deploy/allinone/... ./deploy/cluster/...

# What the binaries and images say they are (pkg/buildinfo, the images' labels and tag), and
# the time every file in the images is dated: the commit's, so rebuilding a commit gives the
# same digests. Override on the command line: `make images VERSION=v1.0.0`.
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
REVISION ?= $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
SOURCE_DATE_EPOCH ?= $(shell git log -1 --format=%ct 2>/dev/null || echo 0)
LDFLAGS = -X github.com/latchkey/latchkey/pkg/buildinfo.version=$(VERSION) -X github.com/latchkey/latchkey/pkg/buildinfo.revision=$(REVISION)
IMAGES_DIR ?= $(CURDIR)/.cache/images
PLATFORMS ?= linux/amd64,linux/arm64

.PHONY: tools crane generate check-generated lint build images manifests test bench run cluster clean

# Every tool at its pinned version, built through the Go module proxy (GOWORK=off: the tool
# modules are not part of the workspace).
tools: $(TOOLS)/buf $(TOOLS)/protoc-gen-go $(TOOLS)/golangci-lint
$(TOOLS)/buf: deploy/tools/buf/go.mod
	cd deploy/tools/buf && GOWORK=off go build -o $(TOOLS)/ github.com/bufbuild/buf/cmd/buf
$(TOOLS)/protoc-gen-go: deploy/tools/go.mod
	cd deploy/tools && GOWORK=off go build -o $(TOOLS)/ google.golang.org/protobuf/cmd/protoc-gen-go \
		google.golang.org/grpc/cmd/protoc-gen-go-grpc \
		github.com/grpc-ecosystem/grpc-gateway/v2/protoc-gen-grpc-gateway \
		github.com/grpc-ecosystem/grpc-gateway/v2/protoc-gen-openapiv2
$(TOOLS)/golangci-lint: deploy/tools/lint/go.mod
	cd deploy/tools/lint && GOWORK=off go build -o $(TOOLS)/ github.com/golangci/golangci-lint/v2/cmd/golangci-lint

# crane (go-containerregistry's registry client), pinned with the image builder in
# deploy/images/go.mod: it pushes the layouts `make images` writes (README "Images").
crane: $(TOOLS)/crane
$(TOOLS)/crane: deploy/images/go.mod
	cd deploy/images && GOWORK=off go build -o $(TOOLS)/ github.com/google/go-containerregistry/cmd/crane

# google/api/{annotations,http}.proto from the grpc-gateway v1 module (the BSR is out of reach).
$(GOOGLEAPIS)/annotations.proto:
	mkdir -p $(GOOGLEAPIS)
	dir=$$(cd deploy/tools && GOWORK=off go mod download -json github.com/grpc-ecosystem/grpc-gateway@$(GOOGLEAPIS_VERSION) | sed -n 's/.*"Dir": "\(.*\)".*/\1/p'); \
		install -m 0644 $$dir/third_party/googleapis/google/api/annotations.proto $$dir/third_party/googleapis/google/api/http.proto $(GOOGLEAPIS)/

generate: $(TOOLS)/buf $(TOOLS)/protoc-gen-go $(GOOGLEAPIS)/annotations.proto
	buf lint
	buf format --diff --exit-code proto
	rm -rf gen/latchkey gen/openapi/*.json
	buf generate

# Fails when gen/ is not what `make generate` would write.
check-generated: $(TOOLS)/buf $(TOOLS)/protoc-gen-go $(GOOGLEAPIS)/annotations.proto
	tmp=$$(mktemp -d); trap 'rm -rf $$tmp' EXIT; buf generate -o $$tmp; \
		diff -r --exclude=go.mod --exclude=go.sum --exclude='*.go' $$tmp/gen/openapi gen/openapi; \
		diff -r $$tmp/gen/latchkey gen/latchkey && echo "gen/ is up to date"

lint: $(TOOLS)/golangci-lint
	golangci-lint run $(MODULES)
	cd deploy/images && GOWORK=off golangci-lint run ./...
	cd deploy/kubernetes && GOWORK=off golangci-lint run ./...

build:
	mkdir -p bin
	go build -ldflags "$(LDFLAGS)" -o bin/ ./services/accounts/cmd/accounts ./services/keys/cmd/keys ./services/audit/cmd/audit ./services/ingest-gateway/cmd/ingest-gateway \
		./services/ingest-gateway/cmd/loadgen ./deploy/allinone/cmd/latchkey

# One OCI image layout per service and one for the command line under $(IMAGES_DIR)/<name>,
# for every platform in PLATFORMS; static, non-root, FROM scratch (deploy/images).
images:
	cd deploy/images && GOWORK=off go run . -repo $(CURDIR) -out $(IMAGES_DIR) -platforms $(PLATFORMS) \
		-version $(VERSION) -revision $(REVISION) -epoch $(SOURCE_DATE_EPOCH)

# The Kubernetes manifests, each overlay of deploy/kubernetes rendered with kustomize (pinned
# in deploy/kubernetes/go.mod, its own module) into $(MANIFESTS_DIR)/<overlay>.yaml, the
# images as `make images` tags them in REGISTRY (README "Kubernetes").
REGISTRY ?= registry.example.com/latchkey
MANIFESTS_DIR ?= $(CURDIR)/.cache/manifests
manifests:
	cd deploy/kubernetes && GOWORK=off go run . -out $(MANIFESTS_DIR) -registry $(REGISTRY) -tag $(VERSION)

test: check-generated
	go vet $(MODULES)
	go test -race -count=1 -timeout 20m $(MODULES)
	# Allocation counts mean nothing under -race (sync.Pool drops items): a race-free pass.
	go test -count=1 -run 'Allocat' ./pkg/... ./services/ingest-gateway/...
	# The image builder, its own module. Without -race: the builder starts no goroutine of its
	# own, and the detector makes its gzip 14 times slower (4 s become 30).
	cd deploy/images && GOWORK=off go vet ./... && GOWORK=off go test -count=1 -timeout 10m ./...
	# The Kubernetes manifests, their own module: both overlays rendered and checked.
	cd deploy/kubernetes && GOWORK=off go vet ./... && GOWORK=off go test -race -count=1 -timeout 10m ./...

bench:
	go test -run='^$$' -bench=. -benchmem -count=1 -timeout 20m $(MODULES)

# Built, then exec'd: make's SIGTERM (and Ctrl-C) reaches the suite itself. `go run` kept
# it running, re-parented, after make was gone.
run:
	go build -ldflags "$(LDFLAGS)" -o bin/latchkey ./deploy/allinone/cmd/latchkey
	exec bin/latchkey dev

# The suite on a 3-node NATS cluster on this machine, each replica its own process (README
# "Cluster"): binaries, stores, logs, kept secrets and topology.json in .cache/cluster, one
# cluster at a time. Ctrl-C or SIGTERM stops it.
cluster:
	go build -o .cache/cluster/launcher ./deploy/cluster/cmd/cluster
	exec .cache/cluster/launcher -ldflags "$(LDFLAGS)"

clean:
	rm -rf bin .cache
