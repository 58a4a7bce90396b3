#!/usr/bin/env bash
# Make .venv with PyTorch 2.13.0 (CPU build, installed first so pip never pulls a CUDA build) and dcgan.
# Extras: EXTRAS="dev,metrics" scripts/setup.sh
set -euo pipefail
cd "$(dirname "$0")/.."
EXTRAS="${EXTRAS:-dev}"
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check torch==2.13.0 2>&1 | grep -v "^WARNING: Location" || true
.venv/bin/python -m pip install -q --disable-pip-version-check -e ".[${EXTRAS}]" 2>&1 | grep -v "^WARNING: Location" || true
.venv/bin/python -c "import dcgan, torch; print(f'dcgan {dcgan.__version__}, torch {torch.__version__} ready in .venv')"
