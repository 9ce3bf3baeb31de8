#!/usr/bin/env bash
# Runs every Go fuzz target for FUZZTIME (default 10s) each and prints the
# executions; new crashers land in the package's testdata/fuzz/ as Go does.
# A failure prints the whole output. Go 1.26's fuzz coordinator can fail a
# target with a bare "context deadline exceeded" as -fuzztime ends, with no
# failing input (go.dev/issue/75804, fixed in Go 1.27): such a run, and
# only such a run, is tried once more.
set -euo pipefail
cd "$(dirname "$0")/.."
t=${FUZZTIME:-10s}

# fuzz NAME PKG: one run; its output in $out, its status returned.
fuzz() { out=$(go test -run "^$1\$" -fuzz "^$1\$" -fuzztime "$t" "$2" 2>&1); }

# deadline_flake: the run failed only on the coordinator's deadline race.
deadline_flake() {
  grep -q "context deadline exceeded" <<<"$out" && ! grep -qE "Failing input written|panic:|_test\.go:[0-9]+:" <<<"$out"
}

for target in "FuzzDecodeV1 ./protocol" "FuzzDecodeV2 ./protocol" "FuzzDecodeV2Binary ./protocol" "FuzzParsePyDict ./protocol" \
              "FuzzParse ./gateway/config" "FuzzTokenizeAndPredict ./backends/onnx" "FuzzTokenizePairs ./backends/onnx"; do
  set -- $target
  echo "==> fuzz: $1 ($2) for $t"
  if fuzz "$1" "$2"; then
    grep -E "elapsed: .*execs|^(ok|FAIL|---)" <<<"$out" | tail -3
    continue
  fi
  if deadline_flake; then
    echo "fuzz: $1 failed on Go's -fuzztime deadline race with no failing input (go.dev/issue/75804); once more"
    if fuzz "$1" "$2"; then
      grep -E "elapsed: .*execs|^(ok|FAIL|---)" <<<"$out" | tail -3
      continue
    fi
  fi
  echo "$out"
  exit 1
done
