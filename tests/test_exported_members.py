"""Every public name a package exports is listed in its `__all__`, and every listed name exists;
exported names show their public module; no module imports another package's private names.

Each package is imported in a fresh interpreter: modules that load lazily (`chronos.config`,
`chronos.stream.redis`, the CLI) become package attributes once anything imports them, and
only what the package itself exports on import is its public surface.
"""

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGES = [
    "chronos",
    "chronos.model",
    "chronos.graph",
    "chronos.stream",
    "chronos.store",
    "chronos.demo",
    "chronos.server",
]

_SURFACE = """
import importlib, json, sys
from types import ModuleType
name = sys.argv[1]
package = importlib.import_module(name)
# A mypyc-compiled function's `__module__` is None: it is chronos's own.
public = sorted(
    attr for attr, value in vars(package).items()
    if not attr.startswith("_")
    and (getattr(value, "__module__", None) or name).startswith("chronos")
    and not (isinstance(value, ModuleType) and not value.__name__.startswith("chronos"))
)
print(json.dumps({"public": public, "all": list(package.__all__), "names": list(vars(package))}))
"""


@pytest.mark.parametrize("name", PACKAGES)
def test_all_lists_exactly_the_public_names(name: str) -> None:
    out = subprocess.run(
        [sys.executable, "-c", _SURFACE, name], capture_output=True, text=True, check=True
    ).stdout
    surface = json.loads(out)
    listed, public = set(surface["all"]), set(surface["public"]) - {"annotations"}
    assert listed - set(surface["names"]) == set(), "listed but missing"
    assert public - listed == set(), "exported but not in __all__"


_MODULES = """
import importlib, json, sys, types
name = sys.argv[1]
package = importlib.import_module(name)
print(json.dumps({attr: value.__module__ for attr in package.__all__
                  if isinstance(value := getattr(package, attr), (type, types.FunctionType))}))
"""


@pytest.mark.parametrize("name", [*PACKAGES, "chronos.cli"])
def test_exported_names_show_a_public_module(name: str) -> None:
    # `chronos.model.ChatRequest`, not `chronos.model._types.ChatRequest`, in reprs and docs.
    out = subprocess.run(
        [sys.executable, "-c", _MODULES, name], capture_output=True, text=True, check=True
    ).stdout
    private = {attr: module for attr, module in json.loads(out).items()
               if any(part.startswith("_") for part in module.split("."))}
    assert private == {}


_SRC = Path(__file__).resolve().parent.parent / "src" / "chronos"


def _package_of(path: Path) -> str:
    parts = path.relative_to(_SRC.parent).with_suffix("").parts
    return ".".join(parts[:2]) if len(parts) > 2 else parts[0]  # chronos.x, or chronos itself


def _private_imports(source: str, package: str) -> list[str]:
    """The private names of other chronos packages that `source`, a module of `package`, imports.

    The top-level private modules (`chronos._sync`) are shared by every package by design.
    """
    found: list[str] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.module:
            targets = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        else:
            continue
        for target in targets:
            parts = target.split(".")
            if parts[0] != "chronos" or len(parts) < 3 or ".".join(parts[:2]) == package:
                continue
            if any(part.startswith("_") for part in parts[2:]):
                found.append(target)
    return found


def test_no_module_imports_another_packages_private_names() -> None:
    found = {
        str(path.relative_to(_SRC)): hits
        for path in sorted(_SRC.rglob("*.py"))
        if (hits := _private_imports(path.read_text(), _package_of(path)))
    }
    assert found == {}


def test_the_private_import_check_sees_every_spelling() -> None:
    source = (
        "from chronos.graph._plan import apply_updates\n"
        "import chronos.store._sql\n"
        "from chronos.stream import _emit\n"
        "def lazy():\n    from chronos.model._http import redact\n"
        "from chronos.server._body import read_body\n"   # its own package: allowed
        "from chronos._sync import run_sync\n"          # shared by all: allowed
        "from chronos.graph import Runner\n"
    )
    assert _private_imports(source, "chronos.server") == [
        "chronos.graph._plan", "chronos.graph._plan.apply_updates", "chronos.store._sql",
        "chronos.stream._emit", "chronos.model._http", "chronos.model._http.redact",
    ]
