#!/usr/bin/env bash
# Installs DCMTK from Debian (echoscu, storescu, storescp, dcmdump): the DICOM peers the DICOM
# node's tests talk to, as a modality and a PACS do; and dicom3tools (dciodvfy), which checks
# derived instances against the standard's IODs. A no-op when they are present.
set -euo pipefail
if command -v storescu >/dev/null 2>&1 && command -v echoscu >/dev/null 2>&1 \
    && command -v dciodvfy >/dev/null 2>&1; then
    exit 0
fi
bash "$(dirname "$0")/apt-install.sh" dcmtk dicom3tools
