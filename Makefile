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
MODULES := ./gen/... ./pkg/... ./pkg/sender/... ./services/accounts/... ./services/keys/... ./services/ingest-gateway/... ./services/audit/... ./deploy/allinone/...

.PHONY: tools generate check-generated lint build test bench run clean

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

build:
	mkdir -p bin
	go build -o bin/ ./services/accounts/cmd/accounts ./services/keys/cmd/keys ./services/audit/cmd/audit ./services/ingest-gateway/cmd/ingest-gateway \
		./services/ingest-gateway/cmd/loadgen ./deploy/allinone/cmd/latchkey

test: check-generated
	go vet $(MODULES)
	go test -race -count=1 -timeout 20m $(MODULES)
	# Allocation counts mean nothing under -race (sync.Pool drops items): a race-free pass.
	go test -count=1 -run 'Allocat' ./pkg/... ./services/ingest-gateway/...

bench:
	go test -run='^$$' -bench=. -benchmem -count=1 -timeout 20m $(MODULES)

run:
	go run ./deploy/allinone/cmd/latchkey

clean:
	rm -rf bin .cache
