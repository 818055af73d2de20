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
    "events stream mode": (
        "`events` is LangChain's callback event stream (`astream_events`: on_chain_start, "
        "on_chat_model_stream, ... for every runnable inside the graph). Chronos nodes are plain "
        "functions with no runnables inside them to report on, so Chronos answers 422 naming "
        "the modes it streams rather than invent a partial imitation."
    ),
    "end of a streamed message in messages mode": (
        "The reference's last `messages/partial` repeats the whole message (langchain-core "
        "closes every streamed message with an empty chunk, merged in) and no "
        "`messages/complete` follows when the message is not in the graph's state; Chronos "
        "sends `messages/complete` with the whole message once the model call ends, so a "
        "client knows the message is final."
    ),
}

EXPECTED_DIFFERENCES: dict[str, str] = {
    "stream_events": DELIBERATE_DIFFERENCES["events stream mode"],
    "stream_messages": DELIBERATE_DIFFERENCES["end of a streamed message in messages mode"],
    "limits": DELIBERATE_DIFFERENCES["request body over 10 MB"]
    + " "
    + DELIBERATE_DIFFERENCES["malformed Last-Event-ID"],
}
