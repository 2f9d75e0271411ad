#!/usr/bin/env bash
# Installs Mesa's Vulkan drivers (lavapipe, a software Vulkan device) so the wgpu backend
# can run on a machine without a GPU. A no-op when a driver is present.
set -euo pipefail
if ls /usr/share/vulkan/icd.d/*.json >/dev/null 2>&1; then
    exit 0
fi
bash "$(dirname "$0")/apt-install.sh" mesa-vulkan-drivers
