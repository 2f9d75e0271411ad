#!/usr/bin/env python3
"""Fails if any module of the workspace's crates imports, directly or through others, a
module that imports it back, or any folder a folder beside it that imports it back. Prints
each cycle found.

An import is a `crate::` or `super::` path, or in a parent's own file a path through one of
its children (`child::f()`, `use child::X`; a `pub use` only re-exports and does not count).
Two checks:
- modules: every file is a node (a module's own children and parents are left out here);
- folders: at every level, each child with everything below it is one node, and the
  parent's own file another, so a child that uses its parent's items while the parent calls
  into the child is a cycle, as is a folder whose modules import a sibling folder that
  imports them back.
Unit tests (`#[cfg(test)] mod tests`) are not the architecture and are left out.

Usage: python3 scripts/import-cycles.py
"""
import os
import re
import sys
import tomllib


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
                    text = fh.read()
                cut = re.search(r"#\[cfg\(test\)\]\s*mod tests", text)
                mods["::".join(parts)] = text[: cut.start()] if cut else text
    return mods


def child_uses(name, text, mods):
    """The children of `name` that its own file uses by a relative path."""
    found = set()
    prefix = name + "::" if name else ""
    children = {
        m[len(prefix):] for m in mods if m.startswith(prefix) and "::" not in m[len(prefix):] and m
    }
    code = "\n".join(
        line
        for line in text.splitlines()
        if not re.match(r"\s*(pub(\([a-z]+\))?\s+)?mod\s", line)
        and not re.match(r"\s*pub(\([a-z]+\))?\s+use\s", line)
        and not line.lstrip().startswith("//")
    )
    # `use a::{b, c}` spans lines: a re-export's braces are dropped with its first line only,
    # so the rest of a multi-line `pub use` is skipped here too.
    code = re.sub(r"pub(\([a-z]+\))?\s+use\s[^;]*;", "", code)
    for c in children:
        if re.search(r"(?<![:\w])" + c + r"::", code):
            found.add(prefix + c)
    return found


def targets(name, text, mods):
    """Every module of the crate that `name`'s text refers to, its parents and children
    included: a path's longest prefix that is a module (`crate::a::b::Item` -> `a::b`,
    `super::Item` or `super::{..}` -> the parent itself)."""
    found = set()
    own = name.split("::") if name else []
    for m in re.finditer(r"\b(crate|(?:super::)*super)::([A-Za-z0-9_:]*)", text):
        if m.group(1) == "crate":
            root = []
        else:
            up = m.group(1).count("super")
            root = own[: max(len(own) - up, 0)]
        path = [p for p in m.group(2).split("::") if p]
        for k in range(len(path), -1, -1):
            cand = "::".join(root + path[:k])
            if cand in mods:
                found.add(cand)
                break
    return (found | child_uses(name, text, mods)) - {name}


def imports(name, text, mods):
    """The modules of the crate that `name`'s text refers to, but its parents and children."""
    return {
        o
        for o in targets(name, text, mods)
        if o and not o.startswith(name + "::") and not name.startswith(o + "::")
    }


def folder_graphs(mods, refs):
    """Per module with children: the graph of its own file ("<name> itself") and each child's
    subtree, from the references `refs` of every module below it."""
    graphs = {}
    for parent in mods:
        prefix = parent + "::" if parent else ""
        kids = sorted(m for m in mods if m.startswith(prefix) and m and "::" not in m[len(prefix):])
        if not kids:
            continue
        own = (parent or "crate") + " itself"

        def node(m):
            if m == parent:
                return own
            for k in kids:
                if m == k or m.startswith(k + "::"):
                    return k
            return None

        graph = {}
        for m, outs in refs.items():
            src = node(m)
            if src is None:
                continue
            for o in outs:
                dst = node(o)
                if dst is not None and dst != src:
                    graph.setdefault(src, set()).add(dst)
        graphs[parent] = graph
    return graphs


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
        refs = {n: targets(n, t, mods) for n, t in mods.items()}
        for parent, g in folder_graphs(mods, refs).items():
            for comp in cycles(g):
                found += 1
                where = parent or "the crate root"
                print(f"{crate}: folders of {where} import each other: {', '.join(comp)}")
    if found:
        sys.exit(1)
    print(f"no import cycles in {', '.join(crates)}")


if __name__ == "__main__":
    main()
