#!/usr/bin/env bash
# Installs Debian / Ubuntu packages without prompts (through sudo when not root); the other
# install scripts call it for what the registries' own tools cannot install.
set -euo pipefail
if ! command -v apt-get >/dev/null 2>&1; then
    echo "no apt-get here: install $* with your distribution's package manager" >&2
    exit 1
fi
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "$@" >/dev/null
