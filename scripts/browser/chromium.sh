#!/usr/bin/env bash
# Finds or installs Chromium for the /docs browser test (e2e/docs_test.go)
# and prints its path on stdout, or nothing when it truly cannot be had.
#   - a chromium already on PATH (or $CHORUS_CHROMIUM) is used as it is
#   - else Debian's chromium package, with apt-get (root, or sudo without a password)
# Idempotent: the second run finds the installed binary. Progress goes to stderr.
set -uo pipefail

step() { printf '==> %s\n' "$*" >&2; }

find_chromium() {
  local c
  for c in "${CHORUS_CHROMIUM:-}" chromium chromium-browser google-chrome; do
    [[ -n $c ]] && command -v "$c" 2>/dev/null && return 0
  done
  return 1
}

if path=$(find_chromium); then
  step "chromium: $path"
  echo "$path"
  exit 0
fi

sudo=
if [[ $(id -u) -ne 0 ]]; then
  if command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
    sudo="sudo -n"
  else
    step "chromium: not installed, and apt-get needs root (the browser test will skip)"
    exit 0
  fi
fi
if ! command -v apt-get >/dev/null; then
  step "chromium: not installed, and no apt-get here (the browser test will skip)"
  exit 0
fi
step "chromium: installing Debian's chromium with apt-get (once)"
# Another install may hold the dpkg lock: wait for it rather than fail.
lock=(-o DPkg::Lock::Timeout=600)
if ! $sudo apt-get "${lock[@]}" update -qq >&2 ||
   ! DEBIAN_FRONTEND=noninteractive $sudo apt-get "${lock[@]}" install -y -qq --no-install-recommends chromium fonts-liberation >/dev/null; then
  step "chromium: apt-get could not install it (the browser test will skip)"
  exit 0
fi
if path=$(find_chromium); then
  step "chromium: installed at $path"
  echo "$path"
fi
