# shaddock — build, demo and test entry points (see README.md).
# `make build` puts bin/master and the demo game binary bin/chat in place;
# `make demo` starts the chat demo cluster through the master;
# `make test` runs everything CI runs.

GO      ?= go
ENV     ?= development
# Fuzzing budgets are counts of executions (-fuzztime=Nx), each about 10 s on
# the 2-core machines: a duration budget makes Go 1.26's fuzz coordinator fail
# now and then with "context deadline exceeded" as the time runs out, with no
# crasher (go.dev/issue/75804; fixed in Go 1.27). A count sets no deadline.
# FUZZTIME=2m (say) overrides every target's budget for a longer local run.
FUZZTIME ?=
fuzz1 = $(GO) test -run='^$$' -fuzz='^$(1)$$' -fuzztime=$(or $(FUZZTIME),$(3)) $(2)

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
	$(call fuzz1,FuzzDecoder,./protocol,600000x)
	$(call fuzz1,FuzzDecodeMessage,./protocol,600000x)
	$(call fuzz1,FuzzParse,./config,130000x)
	$(call fuzz1,FuzzDecode,./pomelopb,450000x)
	$(call fuzz1,FuzzEncode,./pomelopb,700000x)
	$(call fuzz1,FuzzPacked,./internal/packedmap,1000000x)
	$(call fuzz1,FuzzSameAsEncodingJSON,./internal/flatjson,600000x)
	$(call fuzz1,FuzzSameAsMarshal,./internal/flatjson,600000x)
	$(call fuzz1,FuzzCodecUnmarshal,./rpc,150000x)

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
