"""Every public name a package exports is listed in its `__all__`, and every listed name exists.

Each package is imported in a fresh interpreter: modules that load lazily (`chronos.config`,
`chronos.stream.redis`, the CLI) become package attributes once anything imports them, and
only what the package itself exports on import is its public surface.
"""

import json
import subprocess
import sys

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
public = sorted(
    attr for attr, value in vars(package).items()
    if not attr.startswith("_")
    and getattr(value, "__module__", name).startswith("chronos")
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
