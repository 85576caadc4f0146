#!/usr/bin/env bash
# Idempotent set-up of a kwstool checkout: a virtual environment in .venv with kwstool installed
# in editable mode (this compiles the firmware's C front end into kwstool._native). With --test it
# also makes sure the Cortex-M compiler the tests use is present (Debian/Ubuntu: apt-get).
# Re-running does nothing unless pyproject.toml, setup.py or the C sources changed.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
want_test_tools=0
[ "${1:-}" = "--test" ] && want_test_tools=1

if [ ! -x .venv/bin/python ]; then
  echo "kwstool setup: creating .venv with $($PYTHON --version)"
  "$PYTHON" -m venv .venv
fi

stamp=.venv/.kwstool-installed
if [ ! -f "$stamp" ] || [ -n "$(find pyproject.toml setup.py kwstool/_native.c firmware/lib -newer "$stamp" \( -name '*.c' -o -name '*.h' -o -name '*.toml' -o -name '*.py' \) -print -quit)" ]; then
  echo "kwstool setup: installing Python dependencies and building the C extension (first run: a few minutes)"
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e ".[dev]"
  touch "$stamp"
fi

if [ "$want_test_tools" = 1 ] && ! command -v arm-none-eabi-gcc >/dev/null 2>&1; then
  pkgs="gcc-arm-none-eabi libnewlib-arm-none-eabi"
  if command -v apt-get >/dev/null 2>&1; then
    sudo=""
    [ "$(id -u)" != 0 ] && command -v sudo >/dev/null 2>&1 && sudo="sudo"
    if [ "$(id -u)" = 0 ] || [ -n "$sudo" ]; then
      echo "kwstool setup: installing $pkgs (Cortex-M4F compile tests)"
      $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq $pkgs >/dev/null
    fi
  fi
  command -v arm-none-eabi-gcc >/dev/null 2>&1 || \
    echo "kwstool setup: arm-none-eabi-gcc not available; the Cortex-M compile tests will be skipped"
fi
