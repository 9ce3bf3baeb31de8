#!/usr/bin/env bash
# Installs what Chorus links against and tests with, cached under $CHORUS_CACHE
# (default ~/.cache/chorus). Idempotent: a second run only checks stamps.
#   - ONNX Runtime 1.29.0 (CPU) from the npm package onnxruntime-node, SHA-256 checked
#   - libtokenizers.a built with cargo from github.com/daulet/tokenizers v1.22.1
#     with Chorus's patch (scripts/tokenizers/chorus.patch: length-aware and
#     pair encoding); TOKENIZERS_BUILD names the patch level, so a changed
#     patch builds into a new cache folder instead of reusing an old library
#   - redis-server from Debian when it is not on PATH
set -euo pipefail

ORT_VERSION=1.29.0
# SHA-256 of bin/napi-v6/linux/x64/libonnxruntime.so.1 in onnxruntime-node@1.29.0.
ORT_SHA256=89688f5cf51c7e31befbb7b9101bc027799009b18d1baa9a5b1146a72e69538d
TOKENIZERS_VERSION=v1.22.1
# Bump with every change to scripts/tokenizers/chorus.patch (and in the
# Makefile's TOKENIZERS_DIR).
TOKENIZERS_BUILD=chorus1

cache=${CHORUS_CACHE:-$HOME/.cache/chorus}
ort_dir=$cache/onnxruntime-$ORT_VERSION
tok_dir=$cache/tokenizers-$TOKENIZERS_VERSION-$TOKENIZERS_BUILD
repo=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$cache"

step() { printf '==> %s\n' "$*"; }

install_ort() {
  if [[ -f $ort_dir/.ok ]]; then
    step "onnxruntime $ORT_VERSION: cached at $ort_dir"
    return
  fi
  step "onnxruntime $ORT_VERSION: fetching onnxruntime-node@$ORT_VERSION with npm pack"
  local tmp
  tmp=$(mktemp -d "$cache/.ort.XXXXXX")
  (cd "$tmp" && npm pack --silent "onnxruntime-node@$ORT_VERSION" >/dev/null)
  tar -xzf "$tmp"/onnxruntime-node-*.tgz -C "$tmp" package/bin/napi-v6/linux/x64/libonnxruntime.so.1
  local lib=$tmp/package/bin/napi-v6/linux/x64/libonnxruntime.so.1
  echo "$ORT_SHA256  $lib" | sha256sum --check --quiet || {
    echo "deps: SHA-256 of $lib does not match $ORT_SHA256" >&2; exit 1; }
  mkdir -p "$tmp/out"
  mv "$lib" "$tmp/out/libonnxruntime.so.1"
  ln -s libonnxruntime.so.1 "$tmp/out/libonnxruntime.so"
  touch "$tmp/out/.ok"
  rm -rf "$ort_dir"
  mv "$tmp/out" "$ort_dir"   # atomic: a half install is never seen as done
  rm -rf "$tmp"
  step "onnxruntime $ORT_VERSION: installed at $ort_dir"
}

install_tokenizers() {
  if [[ -f $tok_dir/.ok ]]; then
    step "libtokenizers $TOKENIZERS_VERSION-$TOKENIZERS_BUILD: cached at $tok_dir"
    return
  fi
  step "libtokenizers $TOKENIZERS_VERSION-$TOKENIZERS_BUILD: patching and building with cargo (a few minutes, once)"
  local src tmp
  src=$(cd "$repo" && go mod download -json "github.com/daulet/tokenizers@$TOKENIZERS_VERSION" |
        sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
  [[ -d $src ]] || { echo "deps: go mod download gave no source dir for tokenizers" >&2; exit 1; }
  tmp=$(mktemp -d "$cache/.tok.XXXXXX")
  cp -r "$src" "$tmp/src"
  chmod -R u+w "$tmp/src"     # the module cache is read-only
  (cd "$tmp/src" && git apply "$repo/scripts/tokenizers/chorus.patch")
  (cd "$tmp/src" && cargo build --release --quiet)
  mkdir -p "$tmp/out"
  cp "$tmp/src/target/release/libtokenizers.a" "$tmp/out/"
  { rustc --version; cargo --version; } > "$tmp/out/toolchain.txt"
  cp "$tmp/src/test/data/bert-base-uncased.json" "$tmp/out/"
  touch "$tmp/out/.ok"
  rm -rf "$tok_dir"
  mv "$tmp/out" "$tok_dir"
  rm -rf "$tmp"
  step "libtokenizers $TOKENIZERS_VERSION: built with $(head -1 "$tok_dir/toolchain.txt")"
}

install_redis() {
  if command -v redis-server >/dev/null; then
    step "redis-server: $(command -v redis-server)"
    return
  fi
  step "redis-server: installing from Debian"
  local sudo=
  [[ $(id -u) -eq 0 ]] || sudo=sudo
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq redis-server >/dev/null
}

install_ort
install_tokenizers
install_redis
