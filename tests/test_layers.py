"""The package's shape: no upward import between layers and no import cycle, over every import
(module level, inside functions, under TYPE_CHECKING, and `import_module("...")` by name). The
layer order is read from safellm/README.md, the one place it is written."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LAYER_LINE = re.compile(r"^(\d+)\.\s+(.*?)\s+—")


def read_layers(readme: Path) -> dict[str, int]:
    """Module or package name → layer number, from the numbered list after the `layers` marker."""
    text = readme.read_text(encoding="utf-8")
    _, marker, rest = text.partition("<!-- layers")
    assert marker, f"{readme} has no `<!-- layers` marker before its layer list"
    layers: dict[str, int] = {}
    for line in rest.splitlines()[1:]:
        m = LAYER_LINE.match(line)
        if m is None:
            if layers:
                break
            continue
        for name in re.findall(r"`([\w.]+)`", m.group(2)):
            layers[name] = int(m.group(1))
    assert layers, f"{readme}: no numbered layer lines after the marker"
    return layers


def module_files(root: Path, packages: tuple[str, ...]) -> dict[str, Path]:
    mods = {}
    for pkg in packages:
        for path in sorted((root / pkg).rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            mods[".".join(parts)] = path
    return mods


def imports_of(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The project modules `name` imports, anywhere in its file."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()

    def add(target: str) -> None:
        while target and target not in modules:  # `import a.b.c` of a name inside a module
            target = target.rpartition(".")[0]
        if target and target != name:
            found.add(target)

    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                add(alias.name)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            for alias in node.names:
                sub = f"{source}.{alias.name}"
                add(sub if sub in modules else source)
        elif (
            isinstance(node, ast.Call)
            and getattr(node.func, "attr", getattr(node.func, "id", "")) == "import_module"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            add(node.args[0].value)
    return found


def layer_of(module: str, layers: dict[str, int]) -> int | None:
    """The layer of the longest listed name that is `module` or a package above it (the root
    package `safellm` counts for itself only)."""
    parts = module.split(".")
    for i in range(len(parts), 0, -1):
        prefix = ".".join(parts[:i])
        if prefix in layers and (i == len(parts) or prefix != "safellm"):
            return layers[prefix]
    return None


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    found: list[list[str]] = []

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
                found.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def problems(root: Path, packages: tuple[str, ...], readme: Path) -> list[str]:
    layers = read_layers(readme)
    modules = module_files(root, packages)
    graph = {m: imports_of(m, p, modules) for m, p in modules.items()}
    found = [f"{m} is in no layer of {readme.name}" for m in modules if layer_of(m, layers) is None]
    for m, targets in sorted(graph.items()):
        for t in sorted(targets):
            lm, lt = layer_of(m, layers), layer_of(t, layers)
            if lm is not None and lt is not None and lt > lm:
                found.append(f"upward import: {m} (layer {lm}) imports {t} (layer {lt})")
    found += [f"import cycle: {' ↔ '.join(c)}" for c in cycles(graph)]
    return found


def test_no_upward_import_and_no_cycle() -> None:
    found = problems(ROOT, ("safellm", "app"), ROOT / "safellm" / "README.md")
    assert not found, "\n".join(found)


def test_the_layers_list_every_package() -> None:
    layers = read_layers(ROOT / "safellm" / "README.md")
    packages = {p.parent.name for p in (ROOT / "safellm").glob("*/__init__.py")}
    assert {f"safellm.{p}" for p in packages if p != "_data"} <= set(layers)
    assert layers["safellm.tasks"] < layers["safellm.data"] < layers["safellm.risk"]
    assert layers["safellm.risk"] < layers["safellm.explain"] < layers["safellm.services"]
    assert layers["safellm.cli"] == layers["app"]


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        (  # a lower layer importing a higher one, inside a function
            {"low/__init__.py": "", "low/a.py": "def f():\n    from high import b\n"},
            "upward import: low.a (layer 1) imports high.b (layer 2)",
        ),
        (  # two modules of one layer importing each other, one only for type checking
            {
                "low/__init__.py": "",
                "low/a.py": "from low.b import x\n",
                "low/b.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
                "    from low import a\nx = 1\n",
            },
            "import cycle: low.a ↔ low.b",
        ),
        (  # an import by name
            {
                "low/__init__.py": "",
                "low/a.py": "import importlib\nimportlib.import_module('high.b')\n",
            },
            "upward import: low.a (layer 1) imports high.b (layer 2)",
        ),
        (  # a relative import upward
            {"low/__init__.py": "", "low/a.py": "from ..high import b\n"},
            "upward import: low.a (layer 1) imports high.b (layer 2)",
        ),
        (  # relative and downward imports are fine
            {
                "low/__init__.py": "",
                "low/a.py": "from . import b\n",
                "low/b.py": "",
                "high/c.py": "from low import a\n",
            },
            "",
        ),
        ({"low/__init__.py": "", "stray/__init__.py": ""}, "stray is in no layer of README.md"),
    ],
)
def test_the_walker_finds_what_it_must(
    tmp_path: Path, files: dict[str, str], expected: str
) -> None:
    (tmp_path / "high").mkdir()
    (tmp_path / "high" / "__init__.py").write_text("")
    (tmp_path / "high" / "b.py").write_text("")
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    readme = tmp_path / "README.md"
    readme.write_text("<!-- layers -->\n1. `low` — below\n2. `high` — above\n")
    packages = tuple(sorted({Path(n).parts[0] for n in files} | {"high"}))
    found = problems(tmp_path, packages, readme)
    if expected:
        assert expected in found, found
    else:
        assert found == [], found
