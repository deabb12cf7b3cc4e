#!/usr/bin/env bash
# Set up a virtual environment in .venv with stylize and everything its tests need.
# Without an NVIDIA GPU it installs PyTorch's CPU build (torch==2.13.0 where a local CPU
# wheel is configured, as on our CI machines); with one, pip's normal CUDA build.
set -euo pipefail
cd "$(dirname "$0")"
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
if ! .venv/bin/python -c "import torch" >/dev/null 2>&1; then
  if command -v nvidia-smi >/dev/null 2>&1; then
    .venv/bin/python -m pip install -q "torch>=2.2,<3"
  else
    .venv/bin/python -m pip install -q "torch==2.13.0"
  fi
fi
.venv/bin/python -m pip install -q -e ".[offline,web,video,ray,bench,dev]"
echo "stylize is set up: activate with 'source .venv/bin/activate'"
