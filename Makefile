# keyplane's developer commands. `make test` is the one test command: CI runs `make lint` and it.
GO ?= go
# staticcheck, run with go run at this version (no install needed).
STATICCHECK ?= honnef.co/go/tools/cmd/staticcheck@v0.8.2

.PHONY: test test-short lint vet bench run build test-sdk-ts
test: vet
	$(GO) test -race -count=1 -timeout 20m ./...
	$(MAKE) test-sdk-ts

# The TypeScript SDK (sdk/typescript): npm ci, then npm test (node --test against a keyplane built
# from this tree). Skipped with a message where Node.js 20+ or npm is missing, unless
# KEYPLANE_REQUIRE_NODE is set (to anything but empty, 0 or false, like every KEYPLANE_REQUIRE_*;
# .ci/run sets it).
test-sdk-ts:
	@if ! command -v npm >/dev/null || ! node -e 'process.exit(Number(process.versions.node.split(".")[0]) >= 20 ? 0 : 1)' 2>/dev/null; then \
		case "$$KEYPLANE_REQUIRE_NODE" in \
		""|0|false) echo "sdk/typescript: tests skipped: Node.js 20+ and npm not found (KEYPLANE_REQUIRE_NODE=1 makes this an error)";; \
		*) echo "sdk/typescript: Node.js 20+ and npm are required (KEYPLANE_REQUIRE_NODE is set); found: $$(node --version 2>/dev/null || echo none)"; exit 1;; \
		esac; \
	else \
		cd sdk/typescript && npm ci --no-audit --no-fund && GO="$(GO)" npm test; \
	fi

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
