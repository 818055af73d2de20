"""Bad input answers in the API's error shape, with the right status, and loses nothing."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import httpx
import pytest
from langgraph_sdk import get_client
from langgraph_sdk.errors import (
    BadRequestError,
    ConflictError,
    NotFoundError,
    UnprocessableEntityError,
)

from tests.server.api_server import Served, serving

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
def served() -> Iterator[Served]:
    with serving("tests.server.api_graphs:agent") as s:
        yield s


async def test_unknown_thread_run_and_assistant_are_404_with_a_detail(served: Served) -> None:
    client = get_client(url=served.url)
    thread = (await client.threads.create())["thread_id"]
    with pytest.raises(NotFoundError):
        await client.threads.get("no-such-thread")
    with pytest.raises(NotFoundError):
        await client.runs.get(thread, "no-such-run")
    with pytest.raises(NotFoundError):
        await client.assistants.get("no-such-assistant")
    with pytest.raises(httpx.HTTPStatusError) as refused:  # `wait` raises httpx's own error
        await client.runs.wait(thread, "no-such-assistant", input={})
    assert refused.value.response.status_code == 404
    async with httpx.AsyncClient() as raw:
        response = await raw.get(f"{served.url}/threads/no-such-thread")
    assert response.status_code == 404
    assert response.json() == {"detail": "Thread with ID no-such-thread not found"}
    assert await client.runs.list(thread) == []  # the refused run left nothing behind


@pytest.mark.parametrize(("body", "field"), [
    ({"assistant_id": "agent", "input": [1, 2]}, "input"),
    ({"assistant_id": "agent", "stream_mode": "everything"}, "stream_mode"),
    ({"assistant_id": "agent", "multitask_strategy": "shout"}, "multitask_strategy"),
    ({"assistant_id": "agent", "interrupt_before": ["nowhere"]}, "interrupt_before"),
    ({"assistant_id": 7}, "assistant_id"),
    ({"input": {}}, "assistant_id"),
])
def test_invalid_run_bodies_are_422_naming_the_field(
    served: Served, body: dict[str, object], field: str
) -> None:
    response = httpx.post(f"{served.url}/runs/wait", json=body)
    assert response.status_code == 422
    assert f"'{field}'" in response.json()["detail"]


def test_a_body_that_is_not_json_is_422(served: Served) -> None:
    response = httpx.post(f"{served.url}/threads", content=b"{not json")
    assert response.status_code == 422
    assert "not valid JSON" in response.json()["detail"]


def test_a_body_over_10_mb_is_413_and_the_server_goes_on(served: Served) -> None:
    big = b'{"metadata": {"x": "' + b"a" * (10 * 1024 * 1024) + b'"}}'
    response = httpx.post(f"{served.url}/threads", content=big)
    assert response.status_code == 413

    def chunks() -> Iterator[bytes]:  # no Content-Length: the limit applies while reading
        yield b'{"metadata": {"x": "'
        for _ in range(11):
            yield b"a" * (1024 * 1024)
        yield b'"}}'

    response = httpx.post(f"{served.url}/threads", content=chunks())
    assert response.status_code == 413
    assert httpx.get(f"{served.url}/ok").status_code == 200


def test_a_client_leaving_mid_body_is_not_an_error(served: Served) -> None:
    host, port = served.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port))) as sock:
        sock.sendall(b"POST /threads HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Content-Length: 1000\r\n\r\n{\"metadata\": ")
    assert httpx.get(f"{served.url}/ok").status_code == 200
    assert "Traceback" not in served.log_text()


async def test_malformed_last_event_id_is_400(served: Served) -> None:
    client = get_client(url=served.url)
    thread = (await client.threads.create())["thread_id"]
    run = await client.runs.create(thread, "agent", input={"steps": []})
    with pytest.raises(BadRequestError):
        async for _ in client.runs.join_stream(thread, run["run_id"],
                                               last_event_id="not-an-id"):
            pass
    assert (await client.runs.join(thread, run["run_id"]))["steps"] == [
        "plan", "write", "review"]


async def test_thread_create_if_exists(served: Served) -> None:
    client = get_client(url=served.url)
    thread = await client.threads.create(metadata={"owner": "a"})
    with pytest.raises(ConflictError):
        await client.threads.create(thread_id=thread["thread_id"])
    again = await client.threads.create(thread_id=thread["thread_id"], if_exists="do_nothing")
    assert again["metadata"] == {"owner": "a"}


async def test_unsupported_options_are_refused_not_ignored(served: Served) -> None:
    client = get_client(url=served.url)
    with pytest.raises(UnprocessableEntityError):
        await client.runs.create(None, "agent", input={}, stream_mode="astral")
    with pytest.raises(UnprocessableEntityError):
        await client.runs.create(None, "agent", input={}, interrupt_after=["nowhere"])
