#!/usr/bin/env bash
# The one prepared GPU run (benchmarks/gpu_check.py says what it runs and writes): from any directory,
#   benchmarks/gpu_check.sh [--device cuda] [--out DIR] [--tiny] [--wheels DIR] [--no-profile] [--cap PART=SECONDS]
# The package is imported from this checkout (PYTHONPATH), not installed; $PYTHON picks the interpreter.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
export PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
exec "${PYTHON:-python3}" "$root/benchmarks/gpu_check.py" "$@"
