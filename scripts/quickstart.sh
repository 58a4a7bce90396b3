#!/usr/bin/env bash
# Set up, then train on the 3,000 Fashion-MNIST images shipped in examples/ and write new images.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
# Run again, it continues the run it left (an interrupted one finishes; a finished one says so) instead of
# stopping at the overwrite guard.
again=()
if compgen -G "runs/quickstart/checkpoints/*.safetensors" >/dev/null; then again=(--resume); fi
.venv/bin/dcgan train examples/fashion-mnist --out runs/quickstart --image-size 28 --steps 1000 --sample-every 250 \
    "${again[@]}" "$@"
.venv/bin/dcgan generate runs/quickstart -n 64 --out-dir runs/quickstart/generated --grid runs/quickstart/grid.png
echo "samples: runs/quickstart/samples/  new images: runs/quickstart/generated/  grid: runs/quickstart/grid.png"
