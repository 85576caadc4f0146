#!/usr/bin/env bash
# Idempotent set-up of a kwstool checkout: a virtual environment in .venv with kwstool installed
# in editable mode (this compiles the firmware's C front end into kwstool._native). With --test it
# also makes sure the Cortex-M compiler the tests use is present (Debian/Ubuntu: apt-get).
# With --test it also installs the teacher extra (the pretrained speech embedding the tests use).
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

extras=dev
[ "$want_test_tools" = 1 ] && extras=dev,teacher
stamp=.venv/.kwstool-installed
if [ ! -f "$stamp" ] || [ -n "$(find pyproject.toml setup.py kwstool/_native.c firmware/lib -newer "$stamp" \( -name '*.c' -o -name '*.h' -o -name '*.toml' -o -name '*.py' \) -print -quit)" ]; then
  echo "kwstool setup: installing Python dependencies and building the C extension (first run: a few minutes)"
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e ".[$extras]"
  touch "$stamp"
elif [ "$want_test_tools" = 1 ] && ! .venv/bin/python -c "import importlib.util as u, sys; sys.exit(not all(u.find_spec(m) for m in ('onnxruntime', 'openwakeword', 'threadpoolctl')))"; then
  echo "kwstool setup: installing the teacher extra (pretrained speech embedding)"
  .venv/bin/python -m pip install -q -e ".[$extras]"
fi

# Debian packages the product and its tests use (installed when missing, as root or via sudo):
#   espeak-ng      kwstool synth (synthetic speech) and its tests
#   libportaudio2  kwstool listen / record (the microphone, through sounddevice)
# with --test also:
#   gcc-arm-none-eabi + newlib  the Cortex-M4F compile tests of the firmware's C
#   clang-format                the C format gate of scripts/lint.sh
need=()
command -v espeak-ng >/dev/null 2>&1 || need+=(espeak-ng)
ldconfig -p 2>/dev/null | grep -q libportaudio || need+=(libportaudio2)
if [ "$want_test_tools" = 1 ]; then
  command -v arm-none-eabi-gcc >/dev/null 2>&1 || need+=(gcc-arm-none-eabi libnewlib-arm-none-eabi)
  command -v clang-format >/dev/null 2>&1 || need+=(clang-format)
fi
if [ ${#need[@]} -gt 0 ] && command -v apt-get >/dev/null 2>&1; then
  sudo=""
  [ "$(id -u)" != 0 ] && command -v sudo >/dev/null 2>&1 && sudo="sudo"
  if [ "$(id -u)" = 0 ] || [ -n "$sudo" ]; then
    echo "kwstool setup: installing ${need[*]}"
    $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}" >/dev/null
  fi
fi
for tool in espeak-ng arm-none-eabi-gcc clang-format; do
  command -v "$tool" >/dev/null 2>&1 || echo "kwstool setup: $tool not available; the tests that need it will be skipped"
done
