"""`chronos demo` run as a real subprocess, the way a user starts it."""

from __future__ import annotations

import signal
import socket
from pathlib import Path

import httpx
import pytest

from chronos.store import SQLiteStore
from tests.cli.command import chronos
from tests.demo.conftest import chronos_demo, drafts, read_events, streamed_text
from tests.model.replay import ReplayServer


def test_demo_prints_its_url_serves_the_page_and_stops_cleanly_on_ctrl_c(
    tmp_path: Path,
) -> None:
    with chronos_demo(tmp_path) as (process, url):
        page = httpx.get(url, timeout=10)
        assert page.status_code == 200
        assert "<title>chronos demo</title>" in page.text
        assert "review" in httpx.get(url + "graph", timeout=10).text

        process.send_signal(signal.SIGINT)
        assert process.wait(30) == 130  # a clean stop, reported as Ctrl-C by convention
        assert process.stderr is not None
        stderr = process.stderr.read()
    assert "llamacpp" in stderr  # the local model by default
    assert "Traceback" not in stderr


@pytest.mark.anyio
async def test_a_run_through_the_command_is_checkpointed_in_the_default_sqlite_file(
    tmp_path: Path, replay_server: ReplayServer
) -> None:
    script = replay_server.script(*drafts(["Hi ", "there."]))
    model = ["--provider", "openai", "--model", "scripted", "--base-url", script.base_url + "/v1"]
    with chronos_demo(tmp_path, *model) as (_, url):
        async with httpx.AsyncClient(base_url=url) as client:
            started = await client.post("/runs", json={"prompt": "Say hi"})
            session = started.json()["session_id"]
            paused = await read_events(client, session, until={"interrupt"})
            assert streamed_text(paused) == "Hi there."
            await client.post(f"/runs/{session}/resume", json={"approved": True})
            done = await read_events(client, session, last_event_id=paused[-1]["id"])
            assert done[-1]["type"] == "completed"

    checkpoints = SQLiteStore(str(tmp_path / "chronos.db"))
    try:
        latest = await checkpoints.latest(session)
    finally:
        await checkpoints.aclose()
    assert latest is not None
    assert latest.status == "completed"
    assert latest.state["answer"] == "Hi there."


def test_help_lists_the_demo() -> None:
    done = chronos("demo", "--help")
    assert done.returncode == 0
    for option in ("--host", "--port", "--provider", "--model", "--max-tokens", "--store"):
        assert option in done.stdout


def test_a_port_in_use_is_a_clear_error() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = chronos("demo", "--port", str(port))
    assert done.returncode == 2
    assert f"port {port} on 127.0.0.1 is in use" in done.stderr
    assert "Traceback" not in done.stderr
    assert done.stdout == ""


@pytest.mark.parametrize(
    ("args", "message"),
    [(["--provider", "nope"], "unknown provider 'nope'"),
     (["--model", "/nonexistent/model.gguf"], "no model file")],
)
def test_a_bad_provider_is_a_clear_error(args: list[str], message: str) -> None:
    done = chronos("demo", "--port", "0", *args)
    assert done.returncode == 2
    assert message in done.stderr
    assert "Traceback" not in done.stderr
    assert done.stdout == ""
