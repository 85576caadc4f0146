#!/usr/bin/env bash
# The four gates: ruff check, ruff format --check, mypy --strict kwstool, clang-format on the C.
# Usage: scripts/lint.sh [--fix]   (--fix rewrites with ruff --fix, ruff format and clang-format -i)
# Tools come from the project's .venv (or $VENV); clang-format from PATH (Debian: clang-format).
# Exits non-zero when any gate fails, after running all of them.
set -uo pipefail
cd "$(dirname "$0")/.."

VENV=${VENV:-.venv}
BIN="$VENV/bin"
[ -x "$BIN/ruff" ] || BIN="$(dirname "$(command -v ruff || echo /usr/bin/ruff)")"
CLANG_FORMAT=${CLANG_FORMAT:-clang-format}
FIX=0
[ "${1:-}" = "--fix" ] && FIX=1

# C and C++ sources under the style of .clang-format; generated files are left as generated.
c_sources() {
  git ls-files 'firmware/lib/**' 'firmware/src/**' 'kwstool/_native.c' 'tests/firmware/*.c' \
    'tests/firmware/*.h' 'scripts/frontend_tables/*.c' |
    grep -E '\.(c|h|cc|cpp)$' |
    grep -v -e '^firmware/lib/kws_frontend/kws_frontend_tables\.c$' -e '^firmware/src/model/'
}

failed=()
gate() {  # gate NAME COMMAND...
  local name=$1
  shift
  echo "== $name"
  if "$@"; then echo "   ok"; else failed+=("$name"); fi
}

if [ $FIX = 1 ]; then
  "$BIN/ruff" check --fix . || true
  "$BIN/ruff" format .
  c_sources | xargs "$CLANG_FORMAT" -i --style=file
fi
gate "ruff check" "$BIN/ruff" check --output-format concise .
gate "ruff format --check" "$BIN/ruff" format --check --output-format concise .
gate "mypy --strict kwstool" "$BIN/mypy" --strict kwstool
gate "clang-format" bash -c "git ls-files >/dev/null && $(declare -f c_sources); c_sources | xargs $CLANG_FORMAT --dry-run -Werror --style=file"

if [ ${#failed[@]} -gt 0 ]; then
  echo "failed: ${failed[*]}"
  exit 1
fi
echo "all gates passed"
