#!/usr/bin/env python3
"""Fails if any module of the workspace's crates imports, directly or through others, a
module that imports it back (a `crate::` or `super::` path counts as an import; a module's
own children and parents do not). Prints each cycle found.

Usage: python3 scripts/import-cycles.py
"""
import os
import re
import sys
import tomllib
PATH = r"([a-z_][a-z0-9_]*(?:::[a-z_][a-z0-9_]*)*)"


def modules(src):
    """Module path ("a::b") -> source text, for every .rs file under `src`."""
    mods = {}
    for root, _, files in os.walk(src):
        for f in files:
            if f.endswith(".rs"):
                path = os.path.join(root, f)
                parts = os.path.relpath(path, src)[:-3].split(os.sep)
                if parts[-1] == "mod":
                    parts = parts[:-1]
                if parts in (["lib"], ["main"]):
                    parts = []
                with open(path, encoding="utf-8") as fh:
                    mods["::".join(parts)] = fh.read()
    return mods


def imports(name, text, mods):
    """The modules of the crate that `name`'s text refers to."""
    found = set()
    base = name.split("::")[:-1] if name else []
    for prefix, root in (("crate", []), ("super", base)):
        for m in re.finditer(r"\b" + prefix + "::" + PATH, text):
            path = m.group(1).split("::")
            for k in range(len(path), 0, -1):
                cand = "::".join(root + path[:k])
                if cand in mods:
                    found.add(cand)
                    break
    return {
        o
        for o in found
        if o != name and not o.startswith(name + "::") and not name.startswith(o + "::")
    }


def cycles(graph):
    """Strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in graph:
        if v not in index:
            visit(v)
    return out


def main():
    root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
    with open(os.path.join(root, "Cargo.toml"), "rb") as f:
        members = tomllib.load(f)["workspace"]["members"]
    crates = [os.path.normpath(os.path.join(m, "src")) for m in members]
    found = 0
    for crate in crates:
        mods = modules(os.path.join(root, crate))
        graph = {n: imports(n, t, mods) for n, t in mods.items()}
        for comp in cycles(graph):
            found += 1
            print(f"{crate}: import cycle through {', '.join(comp)}")
    if found:
        sys.exit(1)
    print(f"no import cycles in {', '.join(crates)}")


if __name__ == "__main__":
    main()
