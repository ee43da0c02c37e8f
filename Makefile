# meshward: the two commands a newcomer needs are `make demo` and `make test`.
GO ?= go

.PHONY: demo build deps test unit e2e fuzz bench lint generate

demo: build ## run the bundled demo shop (frontend on http://127.0.0.1:8080)
	./bin/meshward up --demo

build: ## bin/meshward and the lean sidecar bin/meshward-proxy (up uses it)
	$(GO) build -o bin/meshward ./cmd/meshward
	$(GO) build -o bin/meshward-proxy ./cmd/meshward-proxy

deps: ## the Debian packages the tests use (curl, nginx, haproxy, promtool, chromium); quiet when present
	@./scripts/deps.sh

test: deps unit e2e ## what CI runs: installs what is missing, then every test

unit:
	$(GO) vet ./...
	$(GO) test -race -count=1 ./...

e2e: ## real binary, real processes, real clients (make deps installs what they use)
	$(GO) test -tags e2e -count=1 -timeout 15m ./test/e2e/...

fuzz: ## a short run of every fuzz target
	@for pkg in $$($(GO) list ./...); do \
	  for f in $$($(GO) test -list 'Fuzz.*' $$pkg 2>/dev/null | grep '^Fuzz'); do \
	    echo "== $$pkg $$f"; $(GO) test -run XXX -fuzz "^$$f$$" -fuzztime 10s $$pkg || exit 1; \
	  done; \
	done

lint: ## what STYLE.md asks before a commit (golangci-lint v2: go install github.com/golangci/golangci-lint/v2/cmd/golangci-lint@v2.15.0)
	$(GO) vet ./...
	golangci-lint run ./...

bench:
	$(GO) test -run XXX -bench . -benchmem ./internal/...

generate: ## regenerate gRPC code (needs protoc, protoc-gen-go, protoc-gen-go-grpc)
	$(GO) generate ./internal/api/...
