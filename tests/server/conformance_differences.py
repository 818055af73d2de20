"""Where `chronos serve` answers differently from the reference server, on purpose, and why.

README's list of deliberate differences is this one. `EXPECTED_DIFFERENCES` names the
conformance scenarios whose traces differ because of them: the test expects them to differ
(when one starts to match, it says so and the entry goes). What is not compared at all (ids,
timestamps, LangGraph-internal metadata) is described in `scenarios.py`.
"""

from __future__ import annotations

__all__ = ["DELIBERATE_DIFFERENCES", "EXPECTED_DIFFERENCES"]

DELIBERATE_DIFFERENCES: dict[str, str] = {
    "join a deleted run": (
        "`GET /threads/{t}/runs/{r}/join` on a run that no longer exists (rolled back): the "
        "reference answers 200 with `{\"__error__\": ...}` as if it were the run's output; "
        "Chronos answers 404 in the API's error shape, so the SDK raises `NotFoundError`."
    ),
    "request body over 10 MB": (
        "The reference reads and accepts a body of any size (an 11 MB `metadata` is stored "
        "with the run); Chronos stops reading at 10 MB and answers 413, so one client cannot "
        "make the server hold an unbounded body."
    ),
    "malformed Last-Event-ID": (
        "The reference ignores a `Last-Event-ID` it cannot parse (or answers with an error "
        "frame); Chronos answers 400, so a client that would silently miss or repeat events "
        "learns its id is wrong."
    ),
}

EXPECTED_DIFFERENCES: dict[str, str] = {
    "limits": DELIBERATE_DIFFERENCES["request body over 10 MB"]
    + " "
    + DELIBERATE_DIFFERENCES["malformed Last-Event-ID"],
}
