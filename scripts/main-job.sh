#!/usr/bin/env bash
# The main job, end to end on the embedded default dataset: install (first time only), then the
# Prefect `retrain` flow (data -> DVC -> features -> Feast -> tuning + training -> evaluation ->
# drift -> promotion), then a prediction from a freshly started BentoML server.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/venv.sh
exec custintel retrain --serve-check "$@"
