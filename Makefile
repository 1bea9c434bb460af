# shaddock — build, demo and test entry points (see README.md).
# `make build` puts bin/master and the demo game binary bin/chat in place;
# `make demo` starts the chat demo cluster through the master;
# `make test` runs everything CI runs.

GO      ?= go
ENV     ?= development
FUZZTIME ?= 15s

.PHONY: build demo stop list test unit e2e fuzz vet deps proto proto-check bench clean

build:
	$(GO) build -o bin/master ./cmd/master
	$(GO) build -o bin/chat ./examples/chat
	$(GO) build -o bin/echo ./examples/echo
	$(GO) build -o bin/robot ./tools/robot
	$(GO) build -o bin/pomeloc ./tools/pomeloc

demo: build
	bin/master start --env=$(ENV) --daemon
	@echo
	@echo "chat page: http://127.0.0.1:3001/   status: bin/master list   dashboard: bin/master dashboard   stop: bin/master stop"

stop:
	bin/master stop --env=$(ENV)

list:
	bin/master list --env=$(ENV)

# System packages (as root, through apt) and the pinned npm packages the
# tests need, when missing.
deps:
	.ci/deps.sh

STATICCHECK ?= honnef.co/go/tools/cmd/staticcheck@v0.8.2

vet:
	@out=$$(gofmt -l .); [ -z "$$out" ] || { echo "gofmt needed:"; echo "$$out"; exit 1; }
	$(GO) vet ./...
	$(GO) run $(STATICCHECK) ./...

# Everything CI runs: vet, unit and end-to-end tests with the race detector,
# generated code up to date, bounded fuzzing of every decoder.
test: deps vet proto-check
	$(GO) test -race -count=1 -timeout 20m ./...
	$(MAKE) fuzz

unit:
	$(GO) test -race -count=1 $$($(GO) list ./... | grep -v /e2e)

e2e: deps
	$(GO) test -race -count=1 -timeout 20m ./e2e/...

fuzz:
	$(GO) test -run='^$$' -fuzz='^FuzzDecoder$$' -fuzztime=$(FUZZTIME) ./protocol
	$(GO) test -run='^$$' -fuzz='^FuzzDecodeMessage$$' -fuzztime=$(FUZZTIME) ./protocol
	$(GO) test -run='^$$' -fuzz='^FuzzParse$$' -fuzztime=$(FUZZTIME) ./config
	$(GO) test -run='^$$' -fuzz='^FuzzDecode$$' -fuzztime=$(FUZZTIME) ./pomelopb
	$(GO) test -run='^$$' -fuzz='^FuzzEncode$$' -fuzztime=$(FUZZTIME) ./pomelopb
	$(GO) test -run='^$$' -fuzz='^FuzzPacked$$' -fuzztime=$(FUZZTIME) ./internal/packedmap
	$(GO) test -run='^$$' -fuzz='^FuzzSameAsEncodingJSON$$' -fuzztime=$(FUZZTIME) ./internal/flatjson
	$(GO) test -run='^$$' -fuzz='^FuzzSameAsMarshal$$' -fuzztime=$(FUZZTIME) ./internal/flatjson
	$(GO) test -run='^$$' -fuzz='^FuzzCodecUnmarshal$$' -fuzztime=$(FUZZTIME) ./rpc

proto:
	tools/protogen/gen.sh

# Fails if the committed .pb.go files differ from what the pinned generators produce.
proto-check:
	@command -v protoc >/dev/null || { echo "protoc is required (apt-get install -y protobuf-compiler)"; exit 1; }
	@tmp=$$(mktemp -d) && cp -r proto "$$tmp/" && tools/protogen/gen.sh >/dev/null && \
	  if ! diff -r "$$tmp/proto" proto >/dev/null; then rm -rf proto && cp -r "$$tmp/proto" proto; rm -rf "$$tmp"; \
	    echo "generated protobuf code is stale: run make proto and commit"; exit 1; fi; rm -rf "$$tmp"

bench:
	tools/bench/echo.sh
	tools/bench/chat.sh

clean:
	rm -rf bin
