"""Headless Chromium (Debian's) drives the demo page against a real server.

The model is an OpenAI-compatible stream served slowly over real HTTP, so tokens reach the
page one by one. Screenshots go to `test-artifacts/` (ignored by git).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from chronos.demo import create_app
from tests.demo.conftest import drafts, model_saying, read_events, running
from tests.model.replay import ReplayServer
from tests.stream.test_browser import CHROMIUM, CHROMIUM_ARGS

pytestmark = pytest.mark.anyio

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
STORY = [f"Robot{n} " for n in range(30)]
WAIT = 30_000  # ms, for a page to show what the server sent

# Every change of the answer area, as the length of its text: one entry per DOM update.
WATCH_ANSWER = """() => {
    window.answerLengths = [];
    const answer = document.getElementById("answer");
    new MutationObserver(() => window.answerLengths.push(answer.textContent.length))
        .observe(answer, {childList: true, subtree: true, characterData: true});
}"""


@pytest.fixture(scope="module")
def chromium() -> None:
    if not os.path.exists(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing: apt-get install -y chromium")


@asynccontextmanager
async def demo_browser(
    replay_server: ReplayServer, *stories: Sequence[str], pause: float
) -> AsyncIterator[tuple[Any, str]]:
    """A demo server whose model tells `stories` (one per draft), and Chromium."""
    from playwright.async_api import async_playwright

    app = create_app(model_saying(replay_server, *drafts(*stories, pause=pause)))
    async with running(app) as server, async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser, server.url
        finally:
            await browser.close()


async def send(tab: Any, prompt: str) -> str:
    """Submit `prompt` on the page; the run's session id."""
    await tab.fill("#prompt", prompt)
    async with tab.expect_response("**/runs") as response:
        await tab.click("#send")
    session: str = (await (await response.value).json())["session_id"]
    return session


async def node_state(tab: Any, node: str) -> str:
    """How the graph drawing shows `node`: "active", "waiting", "done", "failed" or ""."""
    classes = await tab.get_attribute(f'#graph .node[data-node="{node}"]', "class")
    states = {"active", "waiting", "done", "failed"} & set(classes.split())
    assert len(states) <= 1, classes
    return states.pop() if states else ""


async def logged_ids(tab: Any) -> list[str]:
    ids: list[str] = await tab.eval_on_selector_all(
        '#log li[data-id]:not([data-type="token"])', "lines => lines.map(line => line.dataset.id)"
    )
    return ids


@pytest.mark.usefixtures("chromium")
async def test_the_page_streams_tokens_pauses_for_review_and_completes_on_approve(
    replay_server: ReplayServer,
) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    async with demo_browser(replay_server, STORY, pause=0.02) as (browser, url):
        tab = await browser.new_page(viewport={"width": 1200, "height": 800})
        await tab.goto(url + "/")
        await tab.wait_for_selector('#graph .node[data-node="review"]')
        assert await tab.is_disabled("#approve")
        await tab.evaluate(WATCH_ANSWER)

        await send(tab, "Tell me a story about a robot")
        await tab.wait_for_selector('#status[data-state="paused"]', timeout=WAIT)
        await tab.screenshot(path=ARTIFACTS / "demo-review.png", full_page=True)

        assert await tab.text_content("#answer .draft") == "".join(STORY)
        lengths = await tab.evaluate("window.answerLengths")
        assert lengths == sorted(lengths)
        assert len(set(lengths)) >= 5, f"tokens did not arrive progressively: {lengths}"
        assert await node_state(tab, "review") == "waiting"
        assert await node_state(tab, "finalize") == ""
        assert await tab.is_enabled("#approve")
        assert await tab.is_enabled("#reject")

        await tab.click("#approve")
        await tab.wait_for_selector('#status[data-state="completed"]', timeout=WAIT)
        await tab.screenshot(path=ARTIFACTS / "demo-completed.png", full_page=True)
        assert await tab.text_content("#status") == "Completed: approved."
        assert await tab.is_disabled("#approve")
        for node in ("__start__", "classify", "draft", "review", "finalize", "__end__"):
            assert await node_state(tab, node) == "done"
        types = await tab.eval_on_selector_all("#log li", "ls => ls.map(l => l.dataset.type)")
        assert types.count("interrupt") == 1
        assert types[-1] == "completed"
    assert (ARTIFACTS / "demo-completed.png").stat().st_size > 0


@pytest.mark.usefixtures("chromium")
async def test_a_reload_mid_run_shows_the_whole_run_once(replay_server: ReplayServer) -> None:
    async with demo_browser(replay_server, STORY, pause=0.05) as (browser, url):
        tab = await browser.new_page()
        streams: list[str] = []
        tab.on("request", lambda r: streams.append(r.url) if "/events" in r.url else None)
        await tab.goto(url + "/")
        session = await send(tab, "Tell me a story about a robot")
        await tab.wait_for_function(
            "document.querySelectorAll('#answer .draft').length > 0"
            " && document.querySelector('#answer .draft').textContent.length > 20",
            timeout=WAIT,
        )
        assert await tab.get_attribute("#status", "data-state") == "running"

        await tab.reload()
        await tab.wait_for_selector('#status[data-state="paused"]', timeout=WAIT)

        assert tab.url == f"{url}/?session={session}"
        assert "last_event_id=" not in streams[0]
        assert "last_event_id=" in streams[-1]  # the reload resumed where it had stopped
        async with httpx.AsyncClient(base_url=url) as client:
            run = await read_events(client, session, until={"interrupt"})
        shown = await logged_ids(tab)
        assert shown == [e["id"] for e in run if e["type"] != "token"]
        assert await tab.text_content("#answer") == "".join(STORY)
        tokens = await tab.text_content('#log li[data-type="token"]')
        assert tokens is not None
        assert tokens.startswith(f"{len(STORY)} tokens ")


@pytest.mark.usefixtures("chromium")
async def test_a_second_tab_follows_the_same_run(replay_server: ReplayServer) -> None:
    stories = (["Hello ", "there."], ["Bye."])
    async with demo_browser(replay_server, *stories, pause=0.0) as (browser, url):
        first = await browser.new_page()
        await first.goto(url + "/")
        session = await send(first, "Say hello")
        other = await (await browser.new_context()).new_page()  # its own sessionStorage
        await other.goto(f"{url}/?session={session}")
        for tab in (first, other):
            await tab.wait_for_selector('#status[data-state="paused"]', timeout=WAIT)

        await other.click("#reject")  # a second draft, which both tabs show
        for tab in (first, other):
            await tab.wait_for_function(
                "document.querySelectorAll('#answer .draft').length === 2", timeout=WAIT
            )
            await tab.wait_for_selector('#status[data-state="paused"]', timeout=WAIT)
        await first.click("#approve")
        for tab in (first, other):
            await tab.wait_for_selector('#status[data-state="completed"]', timeout=WAIT)
        assert await logged_ids(first) == await logged_ids(other)
        assert await other.text_content("#answer .draft.old") == "Hello there."
        assert await other.text_content("#answer .draft:not(.old)") == "Bye."


@pytest.mark.usefixtures("chromium")
async def test_the_page_shows_the_models_tokens_and_cost_per_node_and_in_total(
    replay_server: ReplayServer,
) -> None:
    usage = {"prompt_tokens": 31, "completion_tokens": 7, "total_tokens": 38}
    app = create_app(model_saying(replay_server, *drafts(STORY[:3], STORY[:2], usage=usage)))
    from playwright.async_api import async_playwright

    async with running(app) as server, async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            tab = await browser.new_page()
            await tab.goto(server.url + "/")
            await send(tab, "Tell me a story about a robot")
            await tab.wait_for_selector('#status[data-state="paused"]', timeout=WAIT)
            await tab.wait_for_function(
                "document.getElementById('usage').textContent.includes('total')", timeout=WAIT)
            # The demo's model has no known price: its cost is unknown, never $0.
            assert (await tab.text_content("#usage")).splitlines() == [
                "draft: 31 in / 7 out tokens · cost unknown",
                "total: 31 in / 7 out tokens · cost unknown",
            ]
            await tab.click("#reject")  # a second draft: the draft node's count doubles
            await tab.wait_for_selector('#status[data-state="paused"]', timeout=WAIT)
            await tab.wait_for_function(
                "document.getElementById('usage').textContent.includes('62 in')", timeout=WAIT)
            assert (await tab.text_content("#usage")).splitlines()[-1] == (
                "total: 62 in / 14 out tokens · cost unknown")
        finally:
            await browser.close()
