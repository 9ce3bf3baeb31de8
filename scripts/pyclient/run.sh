#!/usr/bin/env bash
# Runs the stock-client tests against bin/chorus, in the venv given:
# the kserve SDK (REST and gRPC), KServe's pydantic models, and NVIDIA's
# tritonclient (http and grpc). tritonclient.grpc and the kserve SDK register
# the same protobuf package ("inference"), so they run in two processes.
set -euo pipefail
venv=$1
here=$(cd "$(dirname "$0")" && pwd)
bash "$here/venv.sh" "$venv"
cd "$here/../.."
"$venv/bin/python" -m pytest -q -p no:cacheprovider "$here/test_kserve_client.py" "$here/test_kserve_sdk.py" "$here/test_pydantic_responses.py"
"$venv/bin/python" -m pytest -q -p no:cacheprovider "$here/test_tritonclient.py"
