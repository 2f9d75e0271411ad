#!/usr/bin/env bash
# Sourced by the install scripts and CI: the per-user cache that installs too large or too
# slow to repeat for every checkout (LibTorch, ONNX Runtime, CI's cargo builds) live in, so
# that a second clone on the same machine reuses them. Each entry's folder name says what it
# holds (name and version); the scripts verify an entry before using it and rebuild it when
# it does not verify. Delete the folder to start over.
#   CROSSDENOISE_CACHE_DIR    overrides ${XDG_CACHE_HOME:-~/.cache}/crossdenoise
cache_dir="${CROSSDENOISE_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/crossdenoise}"
mkdir -p "$cache_dir"

# Points the project-local path $1 (.ort/cpu, .libtorch) at the cache entry $2, replacing an
# older link or a project-local install of an earlier layout.
link_into_checkout() {
    local link="$1" target="$2"
    if [ -e "$link" ] && [ ! -L "$link" ]; then
        rm -rf "$link"
    fi
    mkdir -p "$(dirname "$link")"
    ln -sfn "$target" "$link"
}
