#!/usr/bin/env bash
# Runs every Go fuzz target for FUZZTIME (default 10s) each and prints the
# executions; new crashers land in the package's testdata/fuzz/ as Go does.
set -euo pipefail
cd "$(dirname "$0")/.."
t=${FUZZTIME:-10s}
for target in "FuzzDecodeV1 ./protocol" "FuzzDecodeV2 ./protocol" "FuzzDecodeV2Binary ./protocol" "FuzzParsePyDict ./protocol" \
              "FuzzParse ./gateway/config" "FuzzTokenizeAndPredict ./backends/onnx" "FuzzTokenizePairs ./backends/onnx"; do
  set -- $target
  echo "==> fuzz: $1 ($2) for $t"
  go test -run "^$1\$" -fuzz "^$1\$" -fuzztime "$t" "$2" 2>&1 | grep -E "elapsed: .*execs|^(ok|FAIL|---)|Failing input" | tail -3
done
