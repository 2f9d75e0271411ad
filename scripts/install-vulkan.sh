#!/usr/bin/env bash
# Installs Mesa's Vulkan drivers (lavapipe, a software Vulkan device) so the wgpu backend
# can run on a machine without a GPU. Debian / Ubuntu; a no-op when a driver is present.
set -euo pipefail
if ls /usr/share/vulkan/icd.d/*.json >/dev/null 2>&1; then
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "no Vulkan driver and no apt-get: install your distribution's Mesa Vulkan drivers" >&2
    exit 1
fi
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq mesa-vulkan-drivers >/dev/null
