"""A real `useChat` page (React + `@ai-sdk/react`, bundled by esbuild from npm at test time)
in Debian's Chromium against `chronos serve`: type a prompt, see the answer stream in.

The page is served by the test at the server's own origin (Playwright answers its two
requests), so its transport posts to the real `/ai-sdk/chat` route with no CORS in between.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.server.api_server import Served
from tests.server.dialects.graphs import SLOW_WORDS
from tests.server.dialects.test_js_clients import JS
from tests.stream.test_browser import CHROMIUM, CHROMIUM_ARGS

pytestmark = pytest.mark.anyio

WAIT = 30_000  # ms, for the page to show what the server sent
PAGE = b'<!doctype html><meta charset="utf-8"><div id="root"></div>' \
       b'<script type="module" src="/chat-page.js"></script>'


def bundle(out: Path) -> bytes:
    assert (JS / "node_modules" / ".bin" / "esbuild").exists(), (
        "npm packages missing: run scripts/setup (npm ci in tests/server/dialects/js)")
    subprocess.run([str(JS / "node_modules" / ".bin" / "esbuild"), "chat_page.jsx", "--bundle",
                    "--format=esm", '--define:process.env.NODE_ENV="production"',
                    f"--outfile={out}"], cwd=JS, check=True, capture_output=True, timeout=120)
    return out.read_bytes()


@pytest.fixture(scope="module")
def chromium() -> None:
    if not os.path.exists(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing: apt-get install -y chromium")


async def test_use_chat_streams_the_answer_into_the_page(served: Served, chromium: None,
                                                        tmp_path: Path) -> None:
    from playwright.async_api import Route, async_playwright

    script = bundle(tmp_path / "chat-page.js")

    async def page_or_script(route: Route) -> None:
        if route.request.url.endswith(".js"):
            await route.fulfill(body=script, content_type="text/javascript")
        else:
            await route.fulfill(body=PAGE, content_type="text/html")

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            tab = await browser.new_page()
            errors: list[str] = []
            tab.on("pageerror", lambda exc: errors.append(str(exc)))
            await tab.route(f"{served.url}/chat-page*", page_or_script)
            await tab.goto(f"{served.url}/chat-page")
            await tab.fill("#prompt", "a slow answer, please")
            await tab.click("#send")
            answer = tab.locator("#messages li.assistant")
            # Streamed: the first words show while the rest are still coming.
            await answer.filter(has_text="w2").wait_for(timeout=WAIT)
            seen_early = await answer.inner_text()
            assert "w39" not in seen_early
            await tab.locator("#status", has_text="ready").wait_for(timeout=WAIT)
            assert await answer.inner_text() == "".join(SLOW_WORDS).strip()
            assert await tab.locator("#messages li.user").inner_text() == "a slow answer, please"
            assert errors == []
        finally:
            await browser.close()
