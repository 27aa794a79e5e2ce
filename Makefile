# keyplane's developer commands. `make test` is the one test command: CI runs `make lint` and it.
GO ?= go
# staticcheck, run with go run at this version (no install needed).
STATICCHECK ?= honnef.co/go/tools/cmd/staticcheck@v0.8.2

.PHONY: test test-short lint vet bench run build
test: vet
	$(GO) test -race -count=1 -timeout 20m ./...

# The inner loop: every package but internal/e2e (the end-to-end, crash and fault tests, which run
# the whole program), in -short mode (no browser tests, no load harness), without -race.
test-short: vet
	$(GO) test -short -count=1 $$($(GO) list ./... | grep -v '/internal/e2e$$')

# staticcheck over the Go code, and Redocly over the OpenAPI document (lint-openapi, below).
lint: lint-openapi
	$(GO) run $(STATICCHECK) ./...

vet:
	@test -z "$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))" || (echo "gofmt needed:"; gofmt -l .; exit 1)
	$(GO) vet ./...

bench:
	$(GO) test -run '^$$' -bench . -benchmem ./...

build:
	$(GO) build -o bin/keyplane ./cmd/keyplane

run:
	$(GO) run ./cmd/keyplane serve

# docs/openapi.json, linted by an independent OpenAPI 3.1 implementation: Redocly CLI, pinned, run by
# npx (needs Node.js and the npm registry). redocly.yaml says which rules apply and why.
REDOCLY ?= npx --yes @redocly/cli@2.77.0
.PHONY: lint-openapi
lint-openapi:
	$(REDOCLY) lint docs/openapi.json
