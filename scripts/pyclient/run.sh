#!/usr/bin/env bash
# Runs the kserve SDK client tests against bin/chorus. The venv (first
# argument) is cached and rebuilt only when requirements.txt changes.
set -euo pipefail
venv=$1
here=$(cd "$(dirname "$0")" && pwd)
stamp=$venv/.requirements.sha256
want=$(sha256sum "$here/requirements.txt" | cut -d' ' -f1)
if [[ ! -f $stamp || $(cat "$stamp") != "$want" ]]; then
  echo "==> pyclient: installing $(grep -v '^#' "$here/requirements.txt" | xargs) into $venv"
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check -r "$here/requirements.txt"
  echo "$want" > "$stamp"
fi
cd "$here/../.."
exec "$venv/bin/python" -m pytest -q -p no:cacheprovider "$here/test_kserve_client.py"
