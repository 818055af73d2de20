"""A process that resumes a paused session under its own tracer, for the cross-process test.

    python -m tests.trace_worker TABLE SESSION

Resumes SESSION (paused by `tests.test_telemetry.approval_graph` in a PostgreSQL table) with
the answer "yes" and prints its spans, one JSON object each:
{"name", "trace_id", "span_id", "parent_id"}.
"""

from __future__ import annotations

import asyncio
import sys

import orjson

from chronos import graph
from chronos.store import PostgresStore
from tests.store.backends import POSTGRES_URL
from tests.test_telemetry import approval_graph
from tests.tracing import traced


async def resume(table: str, session: str) -> None:
    async with PostgresStore(POSTGRES_URL, table=table) as store:
        result = await graph.Runner(approval_graph(), store).resume(session, resume="yes")
        assert result.status == "completed", result


def main() -> None:
    table, session = sys.argv[1:3]
    with traced() as exporter:
        asyncio.run(resume(table, session))
        for span in exporter.get_finished_spans():
            context, parent = span.get_span_context(), span.parent
            assert context is not None
            print(orjson.dumps({
                "name": span.name, "trace_id": f"{context.trace_id:032x}",
                "span_id": f"{context.span_id:016x}",
                "parent_id": f"{parent.span_id:016x}" if parent is not None else None,
            }).decode())


if __name__ == "__main__":
    main()
