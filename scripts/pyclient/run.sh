#!/usr/bin/env bash
# Runs the kserve SDK client tests against bin/chorus, in the venv given.
set -euo pipefail
venv=$1
here=$(cd "$(dirname "$0")" && pwd)
bash "$here/venv.sh" "$venv"
cd "$here/../.."
exec "$venv/bin/python" -m pytest -q -p no:cacheprovider "$here/test_kserve_client.py"
