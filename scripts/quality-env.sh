#!/usr/bin/env bash
# Creates .venv-quality/ with the classical denoisers the quality figures compare against:
# BM3D (PyPI bm3d) and scikit-image's NLM and metrics, pinned in
# scripts/requirements-quality.txt. A no-op when the environment already matches it.
set -euo pipefail
cd "$(dirname "$0")/.."
python="${PYTHON:-python3}"
req=scripts/requirements-quality.txt
venv=.venv-quality
if [ -x "$venv/bin/python" ] && cmp -s "$req" "$venv/.requirements"; then
    exit 0
fi
if ! command -v "$python" >/dev/null 2>&1; then
    echo "error: $python not found; the quality reference needs Python 3.10+ with venv and pip" >&2
    exit 1
fi
echo "==> creating $venv with $(tr '\n' ' ' < "$req")"
"$python" -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$req"
cp "$req" "$venv/.requirements"
