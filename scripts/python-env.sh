#!/usr/bin/env bash
# Creates .venv/ with the Python packages the tests use as independent references:
# onnx (graph checker, test models), onnxruntime (a second inference path), pydicom (an
# independent DICOM writer and reader, with pylibjpeg-openjpeg as its JPEG 2000 encoder),
# ismrmrd + h5py (MRD files as Gadgetron and FIRE record them), numpy, Triton's
# model-config schema, and PyYAML (the cluster launchers' check, scripts/check_deploy.py). Versions are pinned in
# scripts/requirements-test.txt; a no-op when the environment already matches it.
set -euo pipefail
cd "$(dirname "$0")/.."

python="${PYTHON:-python3}"
req=scripts/requirements-test.txt
stamp=.venv/.requirements
if [ -x .venv/bin/python ] && [ -f "$stamp" ] && cmp -s "$0" "$stamp.script" && cmp -s "$req" "$stamp"; then
    exit 0
fi
if ! command -v "$python" >/dev/null 2>&1; then
    echo "error: $python not found; the tests need Python 3.10+ with venv and pip" >&2
    exit 1
fi
echo "==> creating .venv with $(tr '\n' ' ' < "$req")"
"$python" -m venv .venv
.venv/bin/python -m pip install --quiet --disable-pip-version-check -r "$req"
# Only Triton's model-config schema is used (tests/support/reference.py triton-check), which
# needs protobuf alone: skip the client's network dependencies.
.venv/bin/python -m pip install --quiet --disable-pip-version-check --no-deps tritonclient==2.73.0
cp "$req" "$stamp"
cp "$0" "$stamp.script"
