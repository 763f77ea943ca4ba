"""The package's shape: no import cycle between jobrun's modules, imports inside functions
included (only `if TYPE_CHECKING:` blocks, which never run, are left out)."""

from __future__ import annotations

import ast
from pathlib import Path

from conftest import ROOT

PACKAGE = ROOT / "jobrun"


def _module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in PACKAGE.rglob("*.py")}


def _type_checking_lines(tree: ast.AST) -> set[int]:
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.body:
                for sub in ast.walk(child):
                    if hasattr(sub, "lineno"):
                        lines.add(sub.lineno)
    return lines


def imports_of(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    """The jobrun modules `name` imports, anywhere in its code."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skip = _type_checking_lines(tree)
    is_pkg = path.name == "__init__.py"
    here = name.split(".") if is_pkg else name.split(".")[:-1]
    out: set[str] = set()

    def add(target: str) -> None:
        while target and target not in known:
            target = target.rpartition(".")[0]
        if target and target != name:
            out.add(target)

    for node in ast.walk(tree):
        if getattr(node, "lineno", None) in skip:
            continue
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.name.startswith("jobrun"):
                    add(a.name)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = here[:len(here) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            if not mod.startswith("jobrun"):
                continue
            for a in node.names:
                sub = f"{mod}.{a.name}"
                add(sub if sub in known else mod)
    return out


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(graph.get(v, ())):
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

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_no_import_cycles() -> None:
    known = _modules()
    graph = {name: imports_of(name, path, known) for name, path in known.items()}
    assert graph["jobrun.app"], "the import walk found nothing: the test is broken"
    cycles = _cycles(graph)
    assert not cycles, "import cycles: " + "; ".join(" <-> ".join(c) for c in cycles)


def test_the_walk_sees_imports_inside_functions() -> None:
    known = _modules()
    graph = {name: imports_of(name, path, known) for name, path in known.items()}
    # jobrun.cli imports most of the package lazily, inside its commands.
    assert "jobrun.app" in set().union(*(graph[m] for m in known if m.startswith("jobrun.cli")))


def test_architecture_lists_every_module() -> None:
    """ARCHITECTURE.md has one line per module: a new module without its line fails here."""
    text = (ROOT / "ARCHITECTURE.md").read_text(encoding="utf-8")
    files = sorted(str(p.relative_to(ROOT)) for p in PACKAGE.rglob("*")
                   if p.suffix in (".py", ".sql"))
    missing = [f for f in files if f"`{f}`" not in text]
    assert not missing, f"not in ARCHITECTURE.md: {missing}"
    gone = [m for m in __import__("re").findall(r"`(jobrun/[\w/]+\.(?:py|sql))`", text)
            if not (ROOT / m).exists()]
    assert not gone, f"ARCHITECTURE.md names modules that do not exist: {gone}"


def test_no_module_is_over_about_400_lines() -> None:
    big = {str(p.relative_to(ROOT)): n for p in PACKAGE.rglob("*.py")
           if (n := len(p.read_text(encoding="utf-8").splitlines())) > 430}
    assert not big, f"split these by concept: {big}"


def test_every_named_sql_block_says_what_it_does() -> None:
    import re

    missing = []
    for f in sorted((PACKAGE / "store").glob("*.sql")):
        parts = re.split(r"^-- ([a-z_0-9]+) --$", f.read_text(encoding="utf-8"), flags=re.M)
        missing += [f"{f.name}:{n}" for n, body in zip(parts[1::2], parts[2::2])
                    if not body.strip().startswith("--") and not re.fullmatch(r"v\d+", n)]
    assert not missing, f"blocks without a one-line description: {missing}"


def _layers() -> tuple[dict[str, int], list[str]]:
    """Each module's section of ARCHITECTURE.md, by order, and the sections' titles."""
    import re

    rank: dict[str, int] = {}
    titles: list[str] = []
    for line in (ROOT / "ARCHITECTURE.md").read_text(encoding="utf-8").splitlines():
        if line.startswith("## "):
            titles.append(line[3:])
        elif m := re.match(r"\| `(jobrun/[\w/]+)\.py` \|", line):
            parts = m.group(1).split("/")
            rank[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = len(titles) - 1
    return rank, titles


def test_dependencies_point_down_the_architecture() -> None:
    """A module imports only modules of its own section of ARCHITECTURE.md or an earlier one,
    so the document's order is the dependency order (imports inside functions included)."""
    known = _modules()
    rank, titles = _layers()
    assert len(titles) > 5, "ARCHITECTURE.md's sections were not read: is it still tables?"
    assert set(known) <= set(rank), f"not in ARCHITECTURE.md: {sorted(set(known) - set(rank))}"
    upward = [f"{name} ({titles[rank[name]]}) imports {target} ({titles[rank[target]]})"
              for name, path in sorted(known.items())
              for target in sorted(imports_of(name, path, known))
              if rank[target] > rank[name]]
    assert not upward, "imports that point up the layers:\n" + "\n".join(upward)


def test_the_layer_check_sees_an_upward_import(tmp_path: Path) -> None:
    """The check is not vacuous: the store importing the service would be caught."""
    known = _modules()
    rank, _ = _layers()
    fake = tmp_path / "sqlite.py"
    fake.write_text("def f():\n    from ..service import Service\n", encoding="utf-8")
    found = imports_of("jobrun.store.sqlite", fake, known)
    assert "jobrun.service" in found and rank["jobrun.service"] > rank["jobrun.store.sqlite"]
