#!/usr/bin/env bash
# One-time setup for minimac: a virtual environment in .venv with the Python packages, plus clang where
# tinygrad's CPU backend needs it (Linux without a GPU). Safe to run again; `make demo` and `make test` call it.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}

# tinygrad compiles CPU kernels with clang. macOS uses METAL (and ships clang with the Xcode tools);
# NVIDIA machines use CUDA. On Linux we install clang if we can, and otherwise say exactly what to run.
if [ "$(uname)" = "Linux" ] && ! command -v clang >/dev/null 2>&1; then
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = "0" ]; then
    echo "setup: installing clang (tinygrad's CPU backend compiles kernels with it)"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq clang >/dev/null
  elif command -v apt-get >/dev/null 2>&1 && command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    echo "setup: installing clang with sudo (tinygrad's CPU backend compiles kernels with it)"
    sudo DEBIAN_FRONTEND=noninteractive apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq clang >/dev/null
  else
    echo "setup: WARNING: clang is not installed. tinygrad's CPU backend needs it to run on a machine without a GPU."
    echo "setup:          install it with your package manager, e.g. 'sudo apt-get install -y clang', then run this again."
  fi
fi

if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv with $($PYTHON --version 2>&1)"
  "$PYTHON" -m venv .venv || { echo "setup: could not create a virtual environment; on Debian/Ubuntu run 'sudo apt-get install -y python3-venv'"; exit 1; }
fi
echo "setup: installing Python packages into .venv (first run takes a minute or two)"
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -r requirements.txt -e .
touch .venv/.installed
