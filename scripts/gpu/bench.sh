#!/usr/bin/env bash
# On a GPU host (docs/GPU.md): full-size DistilBERT on CUDA through Chorus's
# ONNX Runtime backend (fp32 and fp16) side by side with PyTorch eager fp16,
# at seq 128 / batch 128, seq 16 / batch 512, and batch-1 latency.
# Expects: ORT_DIR (core + CUDA providers), the test binary built on the
# build machine (go test -c -o onnx.test ./backends/onnx), and MODELS with
# full/ and full-fp16/ (scripts/bench/make_models.py, scripts/gpu/convert_fp16.py).
set -euo pipefail
: "${ORT_DIR:?}" "${MODELS:?}"
export CHORUS_ORT_LIB=$ORT_DIR/libonnxruntime.so.1 CHORUS_TEST_DEVICE=${CHORUS_TEST_DEVICE:-cuda:0}
nv=$(python3 -c 'import nvidia,os;print(os.path.dirname(nvidia.__path__[0]))' 2>/dev/null || true)
export LD_LIBRARY_PATH=$ORT_DIR:/usr/local/cuda/lib64:$nv/nvidia/cu13/lib:$nv/nvidia/cudnn/lib:${LD_LIBRARY_PATH:-}
for model in full full-fp16; do
  for shape in "128 128" "512 16" "1 16"; do
    set -- $shape
    echo "== chorus/onnxruntime $model batch $1 seq $2"
    CHORUS_BENCH_MODEL=$MODELS/$model CHORUS_BENCH_BATCH=$1 CHORUS_BENCH_SEQ=$2 \
      ./onnx.test -test.run '^$' -test.bench DeviceThroughput -test.benchtime 50x
  done
done
python3 "$(dirname "$0")/bench_torch.py" --model "$MODELS/full"
