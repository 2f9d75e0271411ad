#!/usr/bin/env python3
"""Files a reader can hold: no Rust source file of the workspace over 600 lines before its
unit tests (`#[cfg(test)]`), test files (`tests/`, `benches/`) excepted.

The files still over it are listed below with the count they may not grow beyond: each is
to be split, and the check fails when one grows, when a new file passes 600, or when a
listed file has shrunk under its count (so that the list is tightened as they are split).
"""
import os
import subprocess
import sys

LIMIT = 600
# Still over the limit: (lines before the unit tests) as of the last split.
KNOWN = {
    "runtime/image/src/phantom.rs": 659,
    "runtime/image/src/dicom.rs": 656,
    "firmware-host/src/dicom/pipeline.rs": 632,
}


def code_lines(path):
    n = 0
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.startswith("#[cfg(test)]"):
                break
            n += 1
    return n


def main():
    files = subprocess.run(
        ["git", "ls-files", "*.rs"], check=True, capture_output=True, text=True
    ).stdout.split()
    faults = []
    for path in files:
        parts = path.split("/")
        if "tests" in parts or "benches" in parts or "fuzz" in parts or not os.path.exists(path):
            continue
        n = code_lines(path)
        allowed = KNOWN.get(path)
        if allowed is None and n > LIMIT:
            faults.append(f"{path}: {n} lines before its tests, over {LIMIT}: split it")
        elif allowed is not None and n > allowed:
            faults.append(f"{path}: {n} lines, grown beyond the {allowed} it is held to: split it")
        elif allowed is not None and n < allowed:
            faults.append(
                f"{path}: {n} lines, under the {allowed} listed in scripts/line-counts.py: "
                f"lower its entry (or drop it when under {LIMIT})"
            )
    for path in KNOWN:
        if path not in files:
            faults.append(f"{path}: listed in scripts/line-counts.py but gone: drop its entry")
    if faults:
        print("\n".join(faults), file=sys.stderr)
        sys.exit(1)
    print(f"every file under {LIMIT} lines before its tests, but {len(KNOWN)} held at their size")


if __name__ == "__main__":
    main()
