#!/usr/bin/env bash
# Installs Debian's headless-capable Chromium, which the tests use to render the HTML
# reports the way a reader sees them. A no-op when a Chromium is present.
set -euo pipefail
for b in chromium chromium-browser google-chrome; do
    if command -v "$b" >/dev/null 2>&1; then
        exit 0
    fi
done
bash "$(dirname "$0")/apt-install.sh" chromium
