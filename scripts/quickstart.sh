#!/usr/bin/env bash
# The main job on a fresh machine: set up, run the `quick` profile on the bundled default model,
# sign the report, and verify it. Prints the verdict of `evalkit verify` last.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
. .venv/bin/activate

if [ ! -f keys/evalkit.key ]; then
  evalkit keygen --out keys
fi
out="runs/quick-$(date -u +%Y%m%dT%H%M%SZ)"
evalkit run --model default --config quick --out "$out" --key keys/evalkit.key
evalkit verify "$out" --pub keys/evalkit.pub --model default
