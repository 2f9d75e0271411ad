#!/usr/bin/env python3
"""Files a reader can hold: no Rust source file of the workspace over 600 lines before its
unit tests (`#[cfg(test)]`), test files (`tests/`, `benches/`) excepted; and no function
over 100 lines in them without its reason written above it, as a comment line beginning
`// Long:` among its doc comments and attributes (a dispatch over a closed set of cases,
a list of checks that reads best as one list, a protocol's steps in their order).

The files still over it are listed below with the count they may not grow beyond: each is
to be split, and the check fails when one grows, when a new file passes 600, or when a
listed file has shrunk under its count (so that the list is tightened as they are split).
"""
import os
import re
import subprocess
import sys

LIMIT = 600
FN_LIMIT = 100
FN_START = re.compile(r"^(\s*)(pub(\([\w:]+\))? )?(async )?(const )?(unsafe )?fn (\w+)")
# Still over the limit: (lines before the unit tests) as of the last split.
KNOWN: dict[str, int] = {}


def code_lines(path):
    n = 0
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.startswith("#[cfg(test)]"):
                break
            n += 1
    return n


def long_functions(path):
    """(name, line, length) of each function over FN_LIMIT lines with no `// Long:` reason.

    rustfmt's layout is assumed: a function ends at the first `}` at its own indentation."""
    with open(path, encoding="utf-8") as f:
        lines = f.read().split("\n")
    found = []
    for i, line in enumerate(lines):
        if line.startswith("#[cfg(test)]"):
            break
        m = FN_START.match(line)
        if not m or line.rstrip().endswith(";"):
            continue
        indent = m.group(1)
        end = next((j for j in range(i + 1, len(lines)) if lines[j] == indent + "}"), i)
        length = end - i + 1
        if length <= FN_LIMIT:
            continue
        k = i - 1
        reason = False
        while k >= 0 and lines[k].strip().startswith(("//", "#[")):
            reason = reason or lines[k].strip().startswith("// Long:")
            k -= 1
        if not reason:
            found.append((m.group(7), i + 1, length))
    return found


def main():
    files = subprocess.run(
        ["git", "ls-files", "*.rs"], check=True, capture_output=True, text=True
    ).stdout.split()
    faults = []
    for path in files:
        parts = path.split("/")
        if "tests" in parts or "benches" in parts or "fuzz" in parts or not os.path.exists(path):
            continue
        for name, line, length in long_functions(path):
            faults.append(
                f"{path}:{line}: fn {name} is {length} lines, over {FN_LIMIT}: split it, or "
                "write why it is one function in a `// Long:` comment above it"
            )
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
    print(
        f"every file under {LIMIT} lines before its tests, but {len(KNOWN)} held at their size; "
        f"every function over {FN_LIMIT} lines says why"
    )


if __name__ == "__main__":
    main()
