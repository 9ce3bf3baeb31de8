#!/usr/bin/env bash
# Makes the Python venv of Infinity (infinity-emb with its optimum/ONNX
# Runtime engine), the batching peer in cmd/chorus-bench's infinity section.
# Cached: rebuilt only when requirements.txt changes. Large (torch from PyPI
# with its CUDA wheels: ~6 GB, about 2 minutes here) and made once.
set -euo pipefail
venv=${1:-${CHORUS_CACHE:-$HOME/.cache/chorus}/venv-infinity}
here=$(cd "$(dirname "$0")" && pwd)
stamp=$venv/.requirements.sha256
want=$(sha256sum "$here/requirements.txt" | cut -d' ' -f1)
if [[ -f $stamp && $(cat "$stamp") == "$want" ]]; then
  echo "==> infinity venv: cached at $venv"
  exit 0
fi
echo "==> infinity venv: installing infinity-emb and its pins into $venv (once; ~6 GB)"
rm -rf "$venv"
python3 -m venv "$venv"
"$venv/bin/pip" install -q --disable-pip-version-check -r "$here/requirements.txt"
echo "$want" > "$stamp"
