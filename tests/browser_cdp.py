"""Headless Chromium driven over its DevTools protocol, for pages that keep loading in real time.

``--dump-dom`` dumps at the load event (or ``--timeout``); ``--virtual-time-budget`` stalls
timers while fetches are pending, so a page that polls without end cannot be watched for a few
real seconds that way.  ``watch_page`` opens the page, waits ``seconds`` of wall time, then
returns the live DOM and a PNG screenshot (aiohttp as the websocket client).
"""

from __future__ import annotations

import asyncio
import base64
import subprocess
import time
from pathlib import Path

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
        deadline = time.monotonic() + START_TIMEOUT_S
        while not (port_file.exists() and port_file.read_text().strip()):
            if time.monotonic() > deadline or process.poll() is not None:
                raise RuntimeError("chromium did not open its DevTools port")
            time.sleep(0.1)
        port = int(port_file.read_text().split()[0])
        return asyncio.run(_watch(port, seconds))
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()


async def _watch(port: int, seconds: float) -> tuple[str, bytes]:
    import aiohttp

    async with aiohttp.ClientSession() as session:
        page = None
        for _ in range(50):
            async with session.get(f"http://127.0.0.1:{port}/json") as response:
                page = next((target for target in await response.json() if target["type"] == "page"), None)
            if page is not None:
                break
            await asyncio.sleep(0.1)
        await asyncio.sleep(seconds)
        async with session.ws_connect(page["webSocketDebuggerUrl"], max_msg_size=0) as socket:
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
