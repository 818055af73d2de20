"""Run the editable install with the mypyc-compiled hot paths that `scripts/build-compiled` made.

`scripts/setup` installs Chronos editable (the source in `src/` runs as it is edited) and
builds the wheel users install, whose per-event modules mypyc compiles, into `build/compiled`.
A `.pth` file it writes imports this module at interpreter start-up; `install` puts a finder
in front of the import system that loads those compiled modules instead of their source, but
only while the build matches the source: the build records a hash of `src/chronos` and
`pyproject.toml`, and after any edit the finder steps aside until the next build, so what
runs is never older than what is on disk. `CHRONOS_INTERPRETED=1` runs the source regardless.

This is a top-level module, not part of `chronos`, because importing `chronos` at start-up
would import the very modules it redirects. The wheel does not ship it: there the compiled
modules are in the package itself.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import sys
from collections.abc import Sequence
from importlib.abc import MetaPathFinder
from importlib.machinery import EXTENSION_SUFFIXES, ModuleSpec
from pathlib import Path
from types import ModuleType

__all__ = ["COMPILED_MODULES", "STAMP", "active", "install", "source_hash"]

COMPILED_MODULES = (
    "chronos.graph._events",
    "chronos.stream._subscription",
    "chronos.model._decode",
    "chronos.model._assemble",
    "chronos.model._translate",
    "chronos.model._openai_translate",
    "chronos.model._anthropic_translate",
)
STAMP = "SOURCE_HASH"  # in the build directory: the `source_hash` it was built from

_ROOT = Path(__file__).resolve().parent.parent
_BUILD = _ROOT / "build" / "compiled"


def source_hash(root: Path = _ROOT) -> str:
    """A hash of everything a compiled build depends on: the package source and its config."""
    digest = hashlib.sha256()
    for path in [*sorted((root / "src" / "chronos").rglob("*.py")), root / "pyproject.toml"]:
        digest.update(path.relative_to(root).as_posix().encode())
        digest.update(b"\0")
        digest.update(path.read_bytes())
        digest.update(b"\0")
    return digest.hexdigest()


def _extension(directory: Path, stem: str) -> Path | None:
    for suffix in EXTENSION_SUFFIXES:
        candidate = directory / f"{stem}{suffix}"
        if candidate.is_file():
            return candidate
    return None


def _locations(build: Path) -> dict[str, Path]:
    """Module name to compiled file, the mypyc runtime library the modules import included."""
    found: dict[str, Path] = {}
    for name in COMPILED_MODULES:
        *package, stem = name.split(".")
        location = _extension(build.joinpath(*package), stem)
        if location is None:
            return {}
        found[name] = location
    for library in build.glob("*__mypyc.*"):
        found[library.name.split(".", 1)[0]] = library
    return found


class _CompiledFinder(MetaPathFinder):
    """Finds the compiled modules in the build, once it has checked the build is current."""

    def __init__(self, build: Path) -> None:
        self._build = build
        self._found: dict[str, Path] | None = None  # decided at the first import it serves

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> ModuleSpec | None:
        if fullname not in COMPILED_MODULES and not fullname.endswith("__mypyc"):
            return None
        location = self.locations().get(fullname)
        if location is None:
            return None
        return importlib.util.spec_from_file_location(fullname, location)

    def locations(self) -> dict[str, Path]:
        if self._found is None:
            self._found = _locations(self._build) if _current(self._build) else {}
        return self._found


def _current(build: Path) -> bool:
    try:
        recorded = (build / STAMP).read_text().strip()
    except OSError:
        return False
    return recorded == source_hash(build.parent.parent)


def install(build: Path = _BUILD) -> None:
    """Serve the compiled modules from `build` when it is current (the `.pth` calls this)."""
    if os.environ.get("CHRONOS_INTERPRETED") == "1" or not (build / STAMP).is_file():
        return
    if not any(isinstance(f, _CompiledFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, _CompiledFinder(build))


def active() -> bool:
    """Whether this interpreter loads the compiled modules (current build, not turned off)."""
    return any(isinstance(f, _CompiledFinder) and f.locations() for f in sys.meta_path)
