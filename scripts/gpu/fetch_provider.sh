#!/usr/bin/env bash
# Puts ONNX Runtime's CUDA provider (ORT 1.29.0, CUDA 13) beside the CPU core
# that `make deps` installed, and, for a GPU host that reaches no registry,
# packs it into xz chunks small enough to carry one per call.
#   scripts/gpu/fetch_provider.sh            install beside the core
#   scripts/gpu/fetch_provider.sh --chunks D also write D/provider.tar.xz.part-*
set -euo pipefail
cache=${CHORUS_CACHE:-$HOME/.cache/chorus}
ort=$cache/onnxruntime-1.29.0
pkg=com.github.asus4.onnxruntime.linux-x64-gpu@0.4.9
[[ -f $ort/.ok ]] || { echo "run make deps first" >&2; exit 1; }
if [[ ! -f $ort/libonnxruntime_providers_cuda.so ]]; then
  tmp=$(mktemp -d)
  echo "==> gpu: npm pack $pkg (the core inside it is CPU-only; only the providers are used)"
  (cd "$tmp" && npm pack --silent "$pkg" >/dev/null && tar -xzf ./*.tgz)
  for lib in libonnxruntime_providers_cuda.so libonnxruntime_providers_shared.so; do
    find "$tmp" -name "$lib" -exec cp {} "$ort/$lib" \;
    [[ -f $ort/$lib ]] || { echo "$lib not found in $pkg" >&2; exit 1; }
  done
  rm -rf "$tmp"
fi
echo "==> gpu: providers in $ort"
if [[ ${1:-} == --chunks ]]; then
  out=${2:?--chunks DIR}
  mkdir -p "$out"
  tar -C "$ort" -cf - libonnxruntime_providers_cuda.so libonnxruntime_providers_shared.so | xz -9 -T0 > "$out/provider.tar.xz"
  split -b 30M -d "$out/provider.tar.xz" "$out/provider.tar.xz.part-"
  rm "$out/provider.tar.xz"
  ls -la "$out"
fi
