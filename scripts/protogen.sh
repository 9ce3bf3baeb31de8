#!/usr/bin/env bash
# Regenerates protocol/oippb from oip.proto. The generated code is
# committed, so builds need none of this; only a change to the proto does.
# protoc comes from the system (Debian: apt-get install protobuf-compiler);
# the Go plugins are pinned and installed into the cache.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${CHORUS_CACHE:-$HOME/.cache/chorus}/protoc-gen/bin
command -v protoc >/dev/null || { echo "protoc not found: apt-get install protobuf-compiler" >&2; exit 1; }
GOBIN=$bin go install google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.12
GOBIN=$bin go install google.golang.org/grpc/cmd/protoc-gen-go-grpc@v1.6.2
PATH=$bin:$PATH protoc -I protocol/oippb \
  --go_out=protocol/oippb --go_opt=paths=source_relative \
  --go-grpc_out=protocol/oippb --go-grpc_opt=paths=source_relative \
  protocol/oippb/oip.proto
echo "==> proto: protocol/oippb regenerated with $(protoc --version)"
