"""The editable install loads the compiled hot paths only from a build of the current source."""

from __future__ import annotations

from importlib.machinery import EXTENSION_SUFFIXES
from pathlib import Path

import _chronos_compiled
from _chronos_compiled import COMPILED_MODULES, STAMP, source_hash


def a_checkout_with_a_build(root: Path) -> Path:
    """A source tree and a build of it laid out as build/compiled is (files, not real builds)."""
    (root / "src" / "chronos" / "graph").mkdir(parents=True)
    (root / "src" / "chronos" / "graph" / "_events.py").write_text("x = 1\n")
    (root / "pyproject.toml").write_text("[project]\n")
    build = root / "build" / "compiled"
    for name in COMPILED_MODULES:
        *package, stem = name.split(".")
        build.joinpath(*package).mkdir(parents=True, exist_ok=True)
        build.joinpath(*package, stem + EXTENSION_SUFFIXES[0]).write_bytes(b"")
    (build / ("0123__mypyc" + EXTENSION_SUFFIXES[0])).write_bytes(b"")
    (build / STAMP).write_text(source_hash(root) + "\n")
    return build


def test_a_current_build_serves_the_compiled_modules_and_the_mypyc_library(
    tmp_path: Path,
) -> None:
    build = a_checkout_with_a_build(tmp_path)
    finder = _chronos_compiled._CompiledFinder(build)
    spec = finder.find_spec("chronos.graph._events", None)
    assert spec is not None
    assert spec.origin == str(build / "chronos" / "graph" / ("_events" + EXTENSION_SUFFIXES[0]))
    assert finder.find_spec("0123__mypyc", None) is not None
    assert finder.find_spec("chronos.graph._execute", None) is None  # not compiled: the source


def test_an_edit_since_the_build_runs_the_source(tmp_path: Path) -> None:
    build = a_checkout_with_a_build(tmp_path)
    (tmp_path / "src" / "chronos" / "graph" / "_events.py").write_text("x = 2\n")
    finder = _chronos_compiled._CompiledFinder(build)
    assert finder.find_spec("chronos.graph._events", None) is None
    assert finder.locations() == {}


def test_a_build_missing_a_module_is_not_used(tmp_path: Path) -> None:
    build = a_checkout_with_a_build(tmp_path)
    next(build.joinpath("chronos", "stream").iterdir()).unlink()
    assert _chronos_compiled._CompiledFinder(build).locations() == {}
