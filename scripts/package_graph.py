"""Print snipix's package-level import graph at a git revision, and its import cycles.

    python3 scripts/package_graph.py [REV]        (default: HEAD)

Reads `src/snipix/**.py` as stored at REV (no checkout, nothing imported), records for
each top-level package the other top-level packages its modules import, and lists the
strongly connected components with more than one package (import cycles). import-linter
enforces the rules in `make lint`; this draws the picture docs/architecture.md describes,
for any revision, so a before and an after can be compared.
"""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


GIT = shutil.which("git") or "git"


def _git(*args: str) -> str:
    return subprocess.run(
        [GIT, "-C", str(ROOT), *args], capture_output=True, text=True, check=True
    ).stdout


def _top(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "snipix" else None


def graph(rev: str) -> dict[str, set[str]]:
    edges: dict[str, set[str]] = defaultdict(set)
    for path in _git("ls-tree", "-r", "--name-only", rev, "src/snipix").split():
        if not path.endswith(".py"):
            continue
        module = path.removeprefix("src/").removesuffix(".py").removesuffix("/__init__")
        source = _top(module.replace("/", "."))
        if source is None:
            continue
        edges.setdefault(source, set())
        tree = ast.parse(_git("show", f"{rev}:{path}"))
        for node in ast.walk(tree):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            for name in names:
                target = _top(name)
                if target is not None and target != source:
                    edges[source].add(target)
    return edges


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's strongly connected components of more than one package."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(edges.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component: list[str] = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def main() -> None:
    rev = sys.argv[1] if len(sys.argv) > 1 else "HEAD"
    edges = graph(rev)
    count = sum(len(targets) for targets in edges.values())
    print(f"{rev}: {len(edges)} packages, {count} package-level imports")
    print("import cycles:", cycles(edges) or "none")
    for package in sorted(edges):
        print(f"  {package:14s} -> {', '.join(sorted(edges[package]))}")


if __name__ == "__main__":
    main()
