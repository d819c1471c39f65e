"""The layering of docs/architecture.md holds: a package imports only from its own layer or below
(imports inside functions count too). A new package must be placed in LAYERS (and described in the
table of docs/architecture.md)."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "finmlsec"
LAYERS: dict[str, int] = {
    "errors": 0, "registry": 0, "extras": 0, "metrics": 0, "schema": 0, "ids": 0, "arrays": 0,
    "tasks": 0, "environment": 0,
    "spec": 1, "threatmodel": 1,
    "datasets": 2, "targets": 2,
    "attacks": 3, "defences": 3, "guards": 3,
    "scenario": 4, "scan": 4, "store": 4, "report": 4, "usecases": 4,
    "gateway": 5,
    "cli": 6, "__main__": 6,
}


def package_of(path: Path) -> str:
    return path.relative_to(SRC).parts[0].removesuffix(".py")


def imports(path: Path) -> set[str]:
    """The finmlsec packages ``path`` imports (top level and inside functions)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
            if node.module == "finmlsec":
                names = [f"finmlsec.{a.name}" for a in node.names]
        found |= {n.split(".")[1] for n in names if n.startswith("finmlsec.")}
    return found


def modules() -> list[Path]:
    return [p for p in sorted(SRC.rglob("*.py")) if p.name != "__init__.py" or p.parent != SRC]


def test_every_package_has_a_layer() -> None:
    unplaced = {package_of(p) for p in modules()} - set(LAYERS)
    assert not unplaced, (f"place {sorted(unplaced)} in LAYERS (tests/test_layers.py) and in the "
                          "table of docs/architecture.md")


def test_no_import_goes_up_a_layer() -> None:
    upward = []
    for path in modules():
        pkg = package_of(path)
        for dep in imports(path) - {pkg}:
            if dep in LAYERS and pkg in LAYERS and LAYERS[dep] > LAYERS[pkg]:
                upward.append(f"{path.relative_to(SRC)} (layer {LAYERS[pkg]}) imports "
                              f"finmlsec.{dep} (layer {LAYERS[dep]})")
    assert not upward, "\n".join(upward)


def test_an_upward_import_is_found(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from finmlsec.gateway.app import create_app\n"
                      "import finmlsec.errors\nfrom finmlsec import scan\n")
    assert imports(module) == {"gateway", "errors", "scan"}
