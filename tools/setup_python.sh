#!/usr/bin/env bash
# A Python environment for the tools that make golden files (PyTorch CPU + transformers +
# safetensors from PyPI; accelerate for the HF Trainer peer runs). Tests never need it: they read
# the committed or cached golden files.
# Prints the venv's python path as its last line.
set -euo pipefail
VENV="${BERTRAZOR_VENV:-$HOME/.cache/bertrazor/venv}"
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
fi
if ! "$VENV/bin/python" -c "import torch, transformers, safetensors, numpy, accelerate" 2>/dev/null; then
  "$VENV/bin/pip" install -q --upgrade pip >&2
  "$VENV/bin/pip" install -q --timeout 15 --retries 0 --index-url https://download.pytorch.org/whl/cpu torch >&2 2>/dev/null ||
    "$VENV/bin/pip" install -q torch >&2
  "$VENV/bin/pip" install -q transformers accelerate safetensors numpy scipy scikit-learn >&2
fi
echo "$VENV/bin/python"
