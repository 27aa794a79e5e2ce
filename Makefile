# keyplane's developer commands. `make test` is the one test command: CI runs exactly it.
GO ?= go

.PHONY: test vet bench run build
test: vet
	$(GO) test -race -count=1 -timeout 20m ./...

vet:
	@test -z "$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))" || (echo "gofmt needed:"; gofmt -l .; exit 1)
	$(GO) vet ./...

bench:
	$(GO) test -run '^$$' -bench . -benchmem ./...

build:
	$(GO) build -o bin/keyplane ./cmd/keyplane

run:
	$(GO) run ./cmd/keyplane serve
