"""What a new user sees first: `chronos demo` on the local model, driven over HTTP and SSE.

The server is a subprocess, as a user starts it; the draft is compared with what
`chronos chat` prints for the same request (seeded, temperature 0).
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.cli.command import chronos
from tests.demo.conftest import chronos_demo, read_events, streamed_text

pytestmark = pytest.mark.anyio

PROMPT = "Tell me a story about a robot"
SAMPLING = ["--max-tokens", "24", "--temperature", "0", "--seed", "7"]
# The demo graph's instructions for a creative request (chronos/demo/_graph.py).
SYSTEM = "You are a creative writer. Write what is asked, vividly and briefly."


async def test_the_demo_runs_on_the_local_model_end_to_end(tmp_path: Path) -> None:
    with chronos_demo(tmp_path, *SAMPLING) as (process, url):
        async with httpx.AsyncClient(base_url=url) as client:
            started = await client.post("/runs", json={"prompt": PROMPT})
            session = started.json()["session_id"]
            before = await read_events(client, session, until={"interrupt", "error"})
            assert before[-1]["type"] == "interrupt", before[-1]
            tokens = [e for e in before if e["type"] == "token"]
            assert len(tokens) > 5  # streamed token by token, not in one piece
            assert {e["data"]["node_id"] for e in tokens} == {"draft"}
            draft = streamed_text(before)
            assert draft.strip()
            await client.post(f"/runs/{session}/resume", json={"approved": True})
            after = await read_events(client, session, last_event_id=before[-1]["id"])
        assert process.poll() is None, "the server died"

    assert after[-1]["type"] == "completed"
    final = after[-1]["data"]["state"]
    assert (final["status"], final["answer"], final["drafts"]) == ("approved", draft, 1)
    chat = chronos("chat", "--system", SYSTEM, *SAMPLING, PROMPT)
    assert chat.returncode == 0, chat.stderr
    assert chat.stdout == draft + "\n"
