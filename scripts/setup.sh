#!/usr/bin/env bash
# Make .venv with PyTorch 2.13.0 (CPU build, installed first so pip never pulls a CUDA build) and dcgan with
# everything its tests use: dev (pytest, ruff, mypy), metrics (scipy, the Inception weights), video (mp4),
# onnx (export and onnxruntime), serve (the page), and Debian's chromium for the browser tests (as root, with
# apt-get; elsewhere those tests say they were skipped).
# Fewer extras: EXTRAS="dev" scripts/setup.sh. A failed install stops the script with pip's own message.
set -euo pipefail
cd "$(dirname "$0")/.."
EXTRAS="${EXTRAS:-dev,metrics,video,onnx,serve}"
[ -x .venv/bin/python ] || python3 -m venv .venv
# pip warns about an unused local package index on this machine; that line alone is filtered out.
pip_install() { "${PYTHON:-.venv/bin/python}" -m pip install -q --disable-pip-version-check "$@" 2>&1 | { grep -v "^WARNING: Location" || true; }; }
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null && ! command -v chromium >/dev/null; then
  DEBIAN_FRONTEND=noninteractive apt-get update -q >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null
fi
pip_install torch==2.13.0
pip_install -e ".[${EXTRAS}]"
.venv/bin/python -c "import dcgan, torch; print(f'dcgan {dcgan.__version__}, torch {torch.__version__} ready in .venv')"
