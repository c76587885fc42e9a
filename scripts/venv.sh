# Sourced by the scripts below: create ./.venv with Python 3.11 and install the project into it.
# Reinstalls only when pyproject.toml changed since the last install. Usage: source scripts/venv.sh [EXTRAS]
set -euo pipefail
extras="${1:-}"
PY="${PYTHON:-$(command -v python3.11 || command -v python3)}"
"$PY" -c 'import sys; assert sys.version_info[:2] == (3, 11), "Python 3.11 is required"' || {
  echo "error: Python 3.11 is required (set PYTHON=/path/to/python3.11)" >&2; exit 2; }
[ -x .venv/bin/python ] || "$PY" -m venv .venv
stamp=".venv/.custintel-installed"
want="$(sha256sum pyproject.toml | cut -d' ' -f1)${extras}"
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  .venv/bin/python -m pip install --quiet --upgrade pip setuptools wheel
  # torch is pinned in pyproject.toml (2.13.0, CPU build); plain pip, not uv/poetry, finds it.
  .venv/bin/python -m pip install --quiet -e ".${extras:+[$extras]}"
  echo "$want" > "$stamp"
fi
export PATH="$PWD/.venv/bin:$PATH"
