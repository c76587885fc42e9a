#!/usr/bin/env bash
# Install what the tests need (first time only) and run the test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/venv.sh dev
exec python -m pytest "$@"
