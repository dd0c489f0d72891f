"""Headless Chromium driven over its DevTools protocol, for pages that keep loading in real time.

``--dump-dom`` dumps at the load event (or ``--timeout``); ``--virtual-time-budget`` stalls
timers while fetches are pending, so a page that polls without end cannot be watched for a few
real seconds that way.  ``watch_page`` opens the page, waits ``seconds`` of wall time, then
returns the live DOM and a PNG screenshot (aiohttp as the websocket client).
"""

from __future__ import annotations

import asyncio
import base64
import json
import subprocess
import urllib.request
from pathlib import Path

from tests.waiting import wait_until

START_TIMEOUT_S = 30.0


def watch_page(chromium: str, url: str, profile: Path, seconds: float,
               window: tuple[int, int] = (1600, 1000)) -> tuple[str, bytes]:
    """(outer HTML, PNG bytes) of ``url`` after ``seconds`` in a real headless Chromium."""
    profile.mkdir(parents=True, exist_ok=True)
    port_file = profile / "DevToolsActivePort"
    process = subprocess.Popen(
        [chromium, "--headless=new", "--no-sandbox", "--disable-gpu", "--remote-debugging-port=0",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--no-first-run", "--disable-dev-shm-usage", f"--user-data-dir={profile}",
         f"--window-size={window[0]},{window[1]}", url],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        def devtools_port() -> int | None:
            if process.poll() is not None:
                raise RuntimeError("chromium ended before it opened its DevTools port")
            text = port_file.read_text().strip() if port_file.exists() else ""
            return int(text.split()[0]) if text else None

        port = wait_until(devtools_port, START_TIMEOUT_S, interval=0.1, message="chromium's DevTools port")
        page = wait_until(lambda: _page_target(port), START_TIMEOUT_S, interval=0.1, message="chromium's page")
        return asyncio.run(_watch(page["webSocketDebuggerUrl"], seconds))
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()


def _page_target(port: int) -> dict | None:
    """The DevTools target of the open page, None before chromium lists it."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/json", timeout=5) as response:
        return next((target for target in json.load(response) if target["type"] == "page"), None)


async def _watch(websocket_url: str, seconds: float) -> tuple[str, bytes]:
    import aiohttp

    async with aiohttp.ClientSession() as session:
        await asyncio.sleep(seconds)         # the page runs live for ``seconds``: what is watched
        async with session.ws_connect(websocket_url, max_msg_size=0) as socket:
            html = await _call(socket, 1, "Runtime.evaluate",
                               {"expression": "document.documentElement.outerHTML", "returnByValue": True})
            shot = await _call(socket, 2, "Page.captureScreenshot", {"format": "png"})
    return html["result"]["value"], base64.b64decode(shot["data"])


async def _call(socket, call_id: int, method: str, params: dict) -> dict:
    await socket.send_json({"id": call_id, "method": method, "params": params})
    while True:
        message = await socket.receive_json()
        if message.get("id") == call_id:
            return message["result"]
