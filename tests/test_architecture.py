"""The package's import graph: no circles, no private reach-ins, no upward imports.

Walks every module of ``s3_eventstore`` with ``ast`` (no import side effects) and
collects every ``import``/``from ... import`` of the package, including those under
``TYPE_CHECKING`` and inside functions: a type-only or lazy import is still a
dependency a reader has to follow. docs/ARCHITECTURE.md explains the layers.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = "s3_eventstore"
ROOT = Path(__file__).resolve().parent.parent / PACKAGE

LAYERS: dict[str, int] = {
    # contract and values
    "s3_eventstore.errors": 0,
    "s3_eventstore.identifiers": 0,
    "s3_eventstore.timestamps": 0,
    "s3_eventstore.jsonvalue": 0,
    "s3_eventstore.envelope": 0,
    "s3_eventstore.store": 0,
    "s3_eventstore.memory": 0,
    # the object format, pure; the zstd dictionaries shipped as package data
    "s3_eventstore.format": 1,
    "s3_eventstore.dictionaries": 1,
    # the S3 implementation
    "s3_eventstore.s3": 2,
    # operator tools and the shipped test kit, over the public API
    "s3_eventstore.ops": 3,
    "s3_eventstore.testing": 3,
    # framework adapters, the sync facade and telemetry, over the public API
    "s3_eventstore.adapters": 3,
    "s3_eventstore.sync": 3,
    "s3_eventstore.telemetry": 3,
    # the demo, workload and embedded server
    "s3_eventstore.demo": 4,
    # the command line, the package's public face
    "s3_eventstore.cli": 5,
    "s3_eventstore.__main__": 5,
    "s3_eventstore": 5,
}
"""Lower layers never import higher ones (a module may import its own layer)."""


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {module_name(path): path for path in sorted(ROOT.rglob("*.py"))}


MODULES = modules()


def resolve(name: str) -> str | None:
    """The package module ``name`` refers to (a module, or the package of an attribute)."""
    while name:
        if name in MODULES:
            return name
        name = name.rpartition(".")[0]
    return None


def imports(module: str) -> list[tuple[str, str | None]]:
    """(imported module, imported name or None) for every import of the package."""
    tree = ast.parse(MODULES[module].read_text(encoding="utf-8"))
    is_package = MODULES[module].name == "__init__.py"
    found: list[tuple[str, str | None]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend(
                (alias.name, None) for alias in node.names if alias.name.startswith(PACKAGE)
            )
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = module if is_package else module.rpartition(".")[0]
                for _ in range(node.level - 1):
                    anchor = anchor.rpartition(".")[0]
                base = f"{anchor}.{base}" if base else anchor
            if not base.startswith(PACKAGE):
                continue
            for alias in node.names:
                submodule = f"{base}.{alias.name}"
                if submodule in MODULES:
                    found.append((submodule, None))
                else:
                    found.append((base, alias.name))
    return found


def graph() -> dict[str, set[str]]:
    edges: dict[str, set[str]] = {}
    for module in MODULES:
        targets = {resolve(target) for target, _ in imports(module)}
        edges[module] = {t for t in targets if t is not None and t != module}
    return edges


def layer(module: str) -> int:
    best = ""
    for prefix in LAYERS:
        if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > len(best):
            best = prefix
    return LAYERS[best]


def find_cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

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
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return components


def test_the_walk_sees_the_package() -> None:
    assert "s3_eventstore.s3.store" in MODULES
    assert "s3_eventstore.format.turn" in MODULES
    edges = graph()
    assert "s3_eventstore.s3.bucket" in edges["s3_eventstore.s3.store"]
    assert "s3_eventstore.errors" in edges["s3_eventstore.format.manifest"]


def test_no_import_circles() -> None:
    # Package __init__ modules re-export their children; an edge from a child to its
    # own package's __init__ would make every re-export a circle, so children import
    # siblings directly, and the check covers that too.
    assert find_cycles(graph()) == []


def test_no_module_imports_another_modules_private_names() -> None:
    offenders = [
        f"{module} imports {name} from {target}"
        for module in MODULES
        for target, name in imports(module)
        if name is not None and name.startswith("_") and not name.startswith("__")
    ]
    assert offenders == []


def test_imports_only_run_downwards_between_layers() -> None:
    upward = [
        f"{module} (layer {layer(module)}) imports {target} (layer {layer(target)})"
        for module, targets in graph().items()
        for target in targets
        if layer(target) > layer(module)
    ]
    assert upward == []


def test_the_format_layer_does_no_io() -> None:
    io_modules = {"aioboto3", "aiobotocore", "botocore", "aiohttp", "asyncio", "socket"}
    offenders = []
    for module, path in MODULES.items():
        if not module.startswith("s3_eventstore.format"):
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = (
                [alias.name for alias in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else []
            )
            offenders.extend(
                f"{module} imports {name}" for name in names if name.split(".")[0] in io_modules
            )
    assert offenders == []


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ({"a": {"b"}, "b": {"a"}}, [["a", "b"]]),
        ({"a": {"b"}, "b": {"c"}, "c": set()}, []),
        ({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}, [["a", "b", "c"]]),
    ],
)
def test_the_cycle_finder_finds_cycles(
    source: dict[str, set[str]], expected: list[list[str]]
) -> None:
    assert find_cycles(source) == expected


def test_the_layer_map_covers_every_module() -> None:
    unmapped = [
        module
        for module in MODULES
        if not any(module == p or module.startswith(p + ".") for p in LAYERS)
    ]
    assert unmapped == []
