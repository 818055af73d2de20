"""A real browser (Debian's Chromium, headless) runs the guide's EventSource snippet verbatim."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import Route

from chronos.stream import Broker, Event, SSEHandler
from tests.stream.conftest import serve
from tests.stream.test_sse_http import wait_until

pytestmark = [pytest.mark.anyio, pytest.mark.usefixtures("chromium")]

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

# From the guide, character for character.
SNIPPET = """const source = new EventSource("/events");
source.onmessage = (event) => {
    const data = JSON.parse(event.data);
    console.log(data.type, data);
};"""

PAGE = f"<!doctype html><title>events</title><script>\n{SNIPPET}\n</script>"


@pytest.fixture(scope="module")
def chromium() -> None:
    if not os.path.exists(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing: apt-get install -y chromium")


class ConsoleLog:
    """What the page logs: `(first argument, second argument)` of each `console.log`."""

    def __init__(self) -> None:
        self.messages: list[Any] = []

    def on_console(self, message: Any) -> None:
        if message.type == "log":  # not e.g. the 404 for /favicon.ico
            self.messages.append(message)

    async def entries(self) -> list[tuple[Any, Any]]:
        logged = []
        with anyio.fail_after(30):
            for message in self.messages:
                kind, data = message.args
                logged.append((await kind.json_value(), await data.json_value()))
        return logged


@asynccontextmanager
async def browser_on(handler: SSEHandler) -> AsyncIterator[ConsoleLog]:
    """Serve the page and `handler` at /events; open the page in Chromium."""
    from playwright.async_api import async_playwright

    async def page(request: Request) -> HTMLResponse:
        return HTMLResponse(PAGE)

    app = Starlette(routes=[Route("/", page), Route("/events", handler)])
    log = ConsoleLog()
    async with serve(app) as server, async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            tab = await browser.new_page()
            tab.on("console", log.on_console)
            await tab.goto(server.url + "/")
            yield log
        finally:
            await browser.close()


async def test_the_guides_snippet_logs_every_event_in_order() -> None:
    broker = Broker()
    published = [
        Event("node_start", {"node": "extract"}),
        Event("token", {"text": "multi\nline «ünïcödé» 日本 \u2028 end"}),
        *(Event("node_end", {"node": "extract", "status": "done", "n": n}) for n in range(48)),
        Event("completed", {"state": {"answer": "42"}}),
    ]
    async with browser_on(broker.sse_handler()) as log:
        await wait_until(lambda: broker.statistics().subscriptions == 1, 30)
        for event in published:
            broker.publish(event)
        await wait_until(lambda: len(log.messages) >= len(published), 30)
        logged = await log.entries()
    assert [(kind, data["type"], data["data"]) for kind, data in logged] == [
        (e.type, e.type, e.data) for e in published
    ]
    assert all(data["topic"] == "default" for _, data in logged)


async def test_the_browser_reconnects_and_resumes_without_loss_or_repeats() -> None:
    broker = Broker()
    async with browser_on(broker.sse_handler("client-123", retry=100)) as log:
        await wait_until(lambda: broker.statistics().subscriptions == 1, 30)
        for n in range(10):
            broker.publish(Event("tick", n))
        await wait_until(lambda: len(log.messages) >= 10, 30)
        broker.unsubscribe("client-123")  # the stream ends; EventSource reconnects
        for n in range(10, 20):  # published while the browser is away
            broker.publish(Event("tick", n))
        await wait_until(lambda: len(log.messages) >= 20, 30)
        await wait_until(lambda: broker.statistics().subscriptions == 1, 30)
        broker.publish(Event("tick", 20))
        await wait_until(lambda: len(log.messages) >= 21, 30)
        logged = await log.entries()
    assert [data["data"] for _, data in logged] == list(range(21))
