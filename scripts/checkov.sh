#!/usr/bin/env bash
# Static analysis of rendered Kubernetes manifests with checkov, offline.
#
#   scripts/checkov.sh build/prod/manifests [more dirs...]
#
# checkov lives in its own virtualenv (.venv-checkov, created on first use from PyPI): its pinned `packaging`
# conflicts with pulumi-aws's, so it can never share the project's environment. Suppressions are annotations
# (`checkov.io/skip<N>: CKV_K8S_xx=<reason>`) set by the builders next to the code that needs them.
# checkov skips custom resources, so the pod templates inside LeaderWorkerSets and PodCliqueSets are first lifted
# out into Pods (scripts/checkov_lift.py, with their annotations) and scanned with the rest.
# Exit status: checkov's (non-zero when a check fails that is not suppressed).
set -euo pipefail

CHECKOV_VERSION="3.3.30"
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
VENV="${CHECKOV_VENV:-$ROOT/.venv-checkov}"
PYTHON="${PYTHON:-python3}"

if [ "$#" -lt 1 ]; then
  echo "usage: $0 <manifests dir> [more dirs...]" >&2
  exit 2
fi

stamp="$VENV/.checkov-$CHECKOV_VERSION"
if [ ! -f "$stamp" ]; then
  rm -rf "$VENV"
  "$PYTHON" -m venv "$VENV"
  if ! "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "checkov==$CHECKOV_VERSION" >"$VENV.log" 2>&1; then
    cat "$VENV.log" >&2
    rm -rf "$VENV"
    exit 3
  fi
  touch "$stamp"
fi

# One tree, one -d: checkov 3.3.30 given several -d directories reports the first one's results for each of them
# (measured: `-d prod -d lifted` printed prod's 103 checks twice), so every input is copied under one root.
tree="$(mktemp -d)"
trap 'rm -rf "$tree"' EXIT
i=0
for d in "$@"; do
  i=$((i + 1))
  mkdir -p "$tree/$i"
  cp "$d"/*.yaml "$tree/$i/"
  "$VENV/bin/python" "$ROOT/scripts/checkov_lift.py" "$d" "$tree/$i/lifted"
done
export CKV_SKIP_PACKAGE_UPDATE_CHECK=true
"$VENV/bin/checkov" -d "$tree" --framework kubernetes --skip-download --compact --quiet
