#!/usr/bin/env bash
# The virtualenv of `make check-engine` (.venv-vllm): vLLM's own argument parser at the pinned version, on a CPU.
#
#   scripts/vllm-venv.sh [venv dir]
#
# torch at the exact version the vllm wheel pins (2.13.0 for vllm 0.30.0; set PIP_EXTRA_INDEX_URL to PyTorch's CPU
# index on machines without a local CPU wheel, as the CI job does), then vllm with --no-deps, then the requirements
# the wheel declares minus its GPU kernel packages (tests/tools/vllm_requirements.py). About 3 GB; rebuilt only when
# the vllm pin changes. Exit 3 when the environment cannot be built (no package index).
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
VENV="${1:-$ROOT/.venv-vllm}"
PYTHON="${PYTHON:-python3}"
VLLM_VERSION="$(cd "$ROOT" && "$PYTHON" -c 'from facts.versions import pin; print(pin("vllm").version.lstrip("v"))')"
stamp="$VENV/.vllm-$VLLM_VERSION"
[ -f "$stamp" ] && exit 0

rm -rf "$VENV"
"$PYTHON" -m venv "$VENV"
pip=("$VENV/bin/python" -m pip install --quiet --disable-pip-version-check)
log="$VENV.log"
if ! {
  "${pip[@]}" --no-deps "vllm==$VLLM_VERSION" packaging &&
    torch="$("$VENV/bin/python" -c 'from importlib.metadata import requires; print(next(r.split(";")[0].replace(" ", "") for r in requires("vllm") if r.startswith("torch==")))')" &&
    "${pip[@]}" "$torch" &&
    "$VENV/bin/python" "$ROOT/tests/tools/vllm_requirements.py" > "$VENV/requirements.txt" &&
    "${pip[@]}" -r "$VENV/requirements.txt"
} >"$log" 2>&1; then
  cat "$log" >&2
  rm -rf "$VENV"
  exit 3
fi
touch "$stamp"
