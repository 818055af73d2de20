"""What the fuzz tests share: their budget, a hang guard, and mutations of real inputs.

`FUZZ` marks a hypothesis test as a fuzz target. In the default run it is bounded (200
examples, a few seconds). With `CHRONOS_FUZZ_SECONDS=N` (`scripts/fuzz` sets it) each target
runs again and again, fresh random examples every round, until N seconds have passed, and
prints how many examples it ran.
"""

from __future__ import annotations

import contextlib
import functools
import os
import signal
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from types import FrameType
from typing import Any

import orjson
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

__all__ = ["FUZZ", "SECONDS", "Hang", "hang_guard", "mutated"]

SECONDS = float(os.environ.get("CHRONOS_FUZZ_SECONDS") or 0)


class Hang(BaseException):
    """An input kept a parser busy past the guard's limit (BaseException: nothing eats it)."""


@contextlib.contextmanager
def hang_guard(seconds: float = 5.0) -> Iterator[None]:
    """Fail with `Hang` if the block runs longer than `seconds` (main thread only).

    A limit many times what the work takes: it catches loops that never end, or that grow
    with the square of the input, never a slow machine.
    """

    def alarm(signum: int, frame: FrameType | None) -> None:
        raise Hang(f"still running after {seconds} s")

    previous = signal.signal(signal.SIGALRM, alarm)
    # pytest-timeout's own alarm (SIGALRM too) is put back afterwards, less the time spent.
    outer, interval = signal.setitimer(signal.ITIMER_REAL, seconds)
    start = time.monotonic()
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        if outer:
            left = max(outer - (time.monotonic() - start), 0.001)
            signal.setitimer(signal.ITIMER_REAL, left, interval)


class _Fuzz:
    """The decorator behind `FUZZ`: bounded settings, and the time loop of `scripts/fuzz`."""

    def __init__(self, examples: int) -> None:
        self.examples = examples

    def with_examples(self, examples: int) -> _Fuzz:
        return _Fuzz(examples)

    def __call__(self, test: Callable[..., None]) -> Callable[..., None]:
        bounded = settings(
            max_examples=self.examples,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                   HealthCheck.filter_too_much,
                                   HealthCheck.function_scoped_fixture],
        )(test)
        if not SECONDS:
            return bounded

        @functools.wraps(bounded)
        def timed(*args: Any, **kwargs: Any) -> None:
            rounds, start = 0, time.monotonic()
            while not rounds or time.monotonic() - start < SECONDS:
                bounded(*args, **kwargs)
                rounds += 1
            name = os.environ.get("PYTEST_CURRENT_TEST", "fuzz").split(" ")[0]
            print(f"\nfuzz {name}: {rounds} rounds of up to {self.examples} examples "
                  f"in {time.monotonic() - start:.0f} s", file=sys.stderr)

        return timed


FUZZ = _Fuzz(200)

# Values of every JSON type, and the edges of each: what a vendor's schema does not expect.
_ODD_VALUES: list[Any] = [None, True, False, 0, -1, 1.5, 1e300, 2**63 - 1, "", "x", "\u0000",
                          "[DONE]", [], {}, [None], [[]], {"": None}, {"type": None},
                          [{"index": None}], {"x": []}]
_TOKENS: list[bytes] = [b"\n", b"\r", b"\r\n", b"\n\n", b"\r\n\r\n", b"data: ", b"data:",
                        b"event: error\n", b"id: 1\n", b": comment\n", b"[DONE]", b'"', b"\\",
                        b"{", b"}", b"[", b"]", b",", b":", b"null", b"\xff", b"\xc3",
                        b"\xe2\x80\xa8", b"\x00", b'"index":', b'"type":"error",']


def _paths(value: Any, path: tuple[Any, ...] = (), limit: int = 400) -> list[tuple[Any, ...]]:
    """Paths to the values inside a JSON document, the document itself first."""
    found = [path]
    stack = [(value, path)]
    while stack and len(found) < limit:
        current, where = stack.pop()
        items: Sequence[tuple[Any, Any]] = ()
        if isinstance(current, dict):
            items = list(current.items())
        elif isinstance(current, list):
            items = list(enumerate(current))
        for key, inner in items:
            found.append((*where, key))
            stack.append((inner, (*where, key)))
    return found


def _replace(document: Any, path: tuple[Any, ...], new: Any) -> Any:
    if not path:
        return new
    parent = document
    for key in path[:-1]:
        parent = parent[key]
    parent[path[-1]] = new
    return document


def _json_line(line: bytes) -> tuple[bytes, Any, bytes] | None:
    """(prefix, document, suffix) of a line that holds JSON (NDJSON, or an SSE `data:`)."""
    prefix = b"data: " if line.startswith(b"data: ") else b"data:" if line.startswith(
        b"data:") else b""
    body = line[len(prefix):]
    suffix = b"\r" if body.endswith(b"\r") else b""
    try:
        return prefix, orjson.loads(body[: len(body) - len(suffix)]), suffix
    except orjson.JSONDecodeError:
        return None


def _swap_json(draw: st.DrawFn, body: bytes) -> bytes:
    """Swap one value in one JSON document of the body for a value of another shape."""
    try:
        whole = orjson.loads(body)  # a JSON array body (Gemini without alt=sse)
    except orjson.JSONDecodeError:
        pass
    else:
        path = draw(st.sampled_from(_paths(whole)))
        return orjson.dumps(_replace(whole, path, draw(st.sampled_from(_ODD_VALUES))))
    lines = body.split(b"\n")
    candidates = [i for i, line in enumerate(lines) if _json_line(line) is not None]
    if not candidates:
        return body
    index = draw(st.sampled_from(candidates))
    parsed = _json_line(lines[index])
    assert parsed is not None
    prefix, document, suffix = parsed
    path = draw(st.sampled_from(_paths(document)))
    document = _replace(document, path, draw(st.sampled_from(_ODD_VALUES)))
    lines[index] = prefix + orjson.dumps(document) + suffix
    return b"\n".join(lines)


def mutated(corpus: Sequence[bytes]) -> st.SearchStrategy[bytes]:
    """Real inputs from `corpus`, each changed by 1 to 6 mutations."""

    @st.composite
    def build(draw: st.DrawFn) -> bytes:
        body = draw(st.sampled_from(corpus))
        for _ in range(draw(st.integers(1, 6))):
            op = draw(st.sampled_from(["flip", "truncate", "insert", "delete", "duplicate",
                                       "json", "json"]))
            if op == "json":
                body = _swap_json(draw, body)
                continue
            pos = draw(st.integers(0, len(body)))
            edit = bytearray(body)
            if op == "flip" and body:
                edit[min(pos, len(body) - 1)] ^= 1 << draw(st.integers(0, 7))
            elif op == "truncate":
                del edit[pos:]
            elif op == "insert":
                edit[pos:pos] = draw(st.sampled_from(_TOKENS) | st.binary(min_size=1,
                                                                           max_size=8))
            elif op == "delete":
                del edit[pos : pos + draw(st.integers(1, 64))]
            elif op == "duplicate":
                end = min(len(body), pos + draw(st.integers(1, 256)))
                edit[pos:pos] = body[pos:end]
            body = bytes(edit)
        return body

    return build()
