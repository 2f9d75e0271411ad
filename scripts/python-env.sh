#!/usr/bin/env bash
# Creates .venv/ with the Python packages the tests use as independent references:
# onnx (graph checker, test models), onnxruntime (a second inference path), pydicom (an
# independent DICOM writer and reader) and numpy. Versions are pinned in
# scripts/requirements-test.txt; a no-op when the environment already matches it.
set -euo pipefail
cd "$(dirname "$0")/.."

python="${PYTHON:-python3}"
req=scripts/requirements-test.txt
stamp=.venv/.requirements
if [ -x .venv/bin/python ] && [ -f "$stamp" ] && cmp -s "$req" "$stamp"; then
    exit 0
fi
if ! command -v "$python" >/dev/null 2>&1; then
    echo "error: $python not found; the tests need Python 3.10+ with venv and pip" >&2
    exit 1
fi
echo "==> creating .venv with $(tr '\n' ' ' < "$req")"
"$python" -m venv .venv
.venv/bin/python -m pip install --quiet --disable-pip-version-check -r "$req"
cp "$req" "$stamp"
