"""A headless Chromium driven over the DevTools protocol, for pages whose parts render only once scrolled into view
(the MLflow UI's chart cards): open a page in a fresh profile, scroll until a condition holds, press keys."""

from __future__ import annotations

import asyncio
import itertools
import os
import shutil
import signal
import subprocess
import tempfile
from typing import Any

import aiohttp
from s3_server import free_port

SCROLL = ("document.querySelectorAll('*').forEach(e => { if (e.scrollHeight > e.clientHeight + 50) "
          "e.scrollTop += 300; }); window.scrollBy(0, 300); 1")  # every scrollable part, one step down


class Page:
    """One tab: `js` evaluates an expression, `until` scrolls until one is truthy, `key` presses a key."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws, self.ids = ws, itertools.count(1)

    async def call(self, method: str, **params: Any) -> dict:
        i = next(self.ids)
        await self.ws.send_json({"id": i, "method": method, "params": params})
        while True:
            msg = await self.ws.receive_json()
            if msg.get("id") == i:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg["result"]

    async def js(self, expression: str) -> Any:
        result = await self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        return result["result"].get("value")

    async def until(self, expression: str, seconds: float = 60, scroll: bool = True) -> Any:
        """The expression's value once truthy (scrolling every scrollable part meanwhile); None after `seconds`."""
        for _ in range(int(seconds / 0.5)):
            value = await self.js(expression)
            if value:
                return value
            if scroll:
                await self.js(SCROLL)
            await asyncio.sleep(0.5)
        return None

    async def key(self, selector: str, key: str) -> None:
        """Focus the element and press `key` (e.g. ArrowRight) on it."""
        await self.js(f"document.querySelector({selector!r}).focus(); 1")
        for kind in ("keyDown", "keyUp"):
            await self.call("Input.dispatchKeyEvent", type=kind, key=key, code=key,
                            windowsVirtualKeyCode={"ArrowRight": 39, "ArrowLeft": 37}[key])


async def _session(url: str, script) -> Any:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    port = free_port()
    with tempfile.TemporaryDirectory(ignore_cleanup_errors=True) as profile:
        proc = subprocess.Popen([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                                 f"--user-data-dir={profile}", f"--remote-debugging-port={port}",
                                 "--window-size=1400,1000", "about:blank"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        try:
            async with aiohttp.ClientSession() as http:
                targets = None
                for _ in range(150):
                    try:
                        async with http.get(f"http://127.0.0.1:{port}/json/list") as r:
                            targets = await r.json()
                            break
                    except aiohttp.ClientError:
                        await asyncio.sleep(0.2)
                assert targets, "chromium's DevTools endpoint did not come up"
                tab = next(t for t in targets if t["type"] == "page")
                async with http.ws_connect(tab["webSocketDebuggerUrl"], max_msg_size=0) as ws:
                    page = Page(ws)
                    await page.call("Page.enable")
                    await page.call("Page.navigate", url=url)
                    return await script(page)
        finally:
            os.killpg(proc.pid, signal.SIGKILL)  # the browser and its renderers
            proc.wait()


def in_browser(url: str, script) -> Any:
    """`await script(page)` on `url` opened in a fresh headless Chromium profile; its result."""
    return asyncio.run(asyncio.wait_for(_session(url, script), timeout=240))
