#!/usr/bin/env bash
# Regenerates the Go code of proto/*.proto with pinned generators:
#   protoc               Debian 12's protobuf-compiler (libprotoc 3.21.12)
#   protoc-gen-go        google.golang.org/protobuf v1.36.12
#   protoc-gen-go-grpc   google.golang.org/grpc/cmd/protoc-gen-go-grpc v1.6.1
# Run from anywhere: tools/protogen/gen.sh  (or: make proto)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
bin="$root/bin/protogen"
mkdir -p "$bin"
GOBIN="$bin" go install google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.12
GOBIN="$bin" go install google.golang.org/grpc/cmd/protoc-gen-go-grpc@v1.6.1
command -v protoc >/dev/null || { echo "protoc missing: apt-get install -y protobuf-compiler" >&2; exit 1; }
cd "$root"
PATH="$bin:$PATH" protoc -I proto \
  --go_out=. --go_opt=module=github.com/shaddock/shaddock \
  --go-grpc_out=. --go-grpc_opt=module=github.com/shaddock/shaddock \
  proto/*.proto
echo "generated: $(cd "$root" && ls proto/*/*.pb.go | tr '\n' ' ')"
