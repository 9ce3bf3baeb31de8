#!/usr/bin/env bash
# Makes the Python venv the tests use (the kserve SDK client, and KServe's
# ModelServer as a remote predictor). Cached: rebuilt only when
# requirements.txt changes.
set -euo pipefail
venv=$1
here=$(cd "$(dirname "$0")" && pwd)
stamp=$venv/.requirements.sha256
want=$(sha256sum "$here/requirements.txt" | cut -d' ' -f1)
if [[ -f $stamp && $(cat "$stamp") == "$want" ]]; then
  echo "==> pyvenv: cached at $venv"
  exit 0
fi
echo "==> pyvenv: installing $(grep -v '^#' "$here/requirements.txt" | xargs) into $venv"
rm -rf "$venv"
python3 -m venv "$venv"
"$venv/bin/pip" install -q --disable-pip-version-check -r "$here/requirements.txt"
echo "$want" > "$stamp"
