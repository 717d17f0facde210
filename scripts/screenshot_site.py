"""A screenshot of a published leaderboard page, taken in headless Chromium over the DevTools
protocol (websocket-client), as tests/test_site_browser.py does: the page is loaded from a
file:// URL, its script runs, and the top of the page (at most --max-height pixels) is saved.

    python scripts/screenshot_site.py site/index.html docs/leaderboard.png

Chromium is the Debian package `chromium` (scripts/system-deps.sh installs it).
"""
from __future__ import annotations

import argparse
import base64
import json
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic",
         "--disable-extensions", "--disable-dev-shm-usage", "--hide-scrollbars", "--window-size=1280,1600"]
TIMEOUT = 60.0
WIDTH = 1280


def find_chromium() -> str | None:
    for name in ("chromium", "chromium-browser"):
        path = shutil.which(name)
        if path:
            return path
    return None


def screenshot(binary: str, index: Path, out: Path, max_height: int = 2400) -> None:
    """Load INDEX, wait until its script has run, save the top of the page to OUT (PNG)."""
    import websocket

    with tempfile.TemporaryDirectory() as profile:
        process = subprocess.Popen([binary, *FLAGS, f"--user-data-dir={profile}", "--remote-debugging-port=0",
                                    Path(index).resolve().as_uri()],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            port_file = Path(profile) / "DevToolsActivePort"
            deadline = time.monotonic() + TIMEOUT
            while not (port_file.is_file() and port_file.read_text().strip()):
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("chromium did not open its DevTools port")
                time.sleep(0.05)
            port = int(port_file.read_text().split()[0])
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=TIMEOUT) as response:
                page = next(t for t in json.load(response) if t["type"] == "page")
            socket = websocket.create_connection(page["webSocketDebuggerUrl"], timeout=TIMEOUT,
                                                 suppress_origin=True)
            calls = iter(range(1, 1_000_000))

            def send(method: str, **params):
                call = next(calls)
                socket.send(json.dumps({"id": call, "method": method, "params": params}))
                while True:  # events arrive in between; keep the answer to this call
                    message = json.loads(socket.recv())
                    if message.get("id") == call:
                        if "error" in message:
                            raise RuntimeError(f"{method}: {message['error']}")
                        return message["result"]

            ready = "document.readyState === 'complete' && document.body.dataset.ready === 'true'"
            while send("Runtime.evaluate", expression=ready, returnByValue=True)["result"].get("value") is not True:
                if time.monotonic() > deadline:
                    raise RuntimeError("the page did not finish loading")
                time.sleep(0.05)
            height = min(int(send("Page.getLayoutMetrics")["cssContentSize"]["height"]) + 1, max_height)
            send("Emulation.setDeviceMetricsOverride", width=WIDTH, height=height, deviceScaleFactor=1, mobile=False)
            shot = send("Page.captureScreenshot", format="png", captureBeyondViewport=True,
                        clip={"x": 0, "y": 0, "width": WIDTH, "height": height, "scale": 1})
            out = Path(out)
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_bytes(base64.b64decode(shot["data"]))
            try:
                send("Browser.close")
            except Exception:  # noqa: BLE001 - the browser may close the socket first
                pass
            socket.close()
        finally:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("index", type=Path, help="the page, e.g. site/index.html")
    parser.add_argument("out", type=Path, help="the PNG to write")
    parser.add_argument("--max-height", type=int, default=2400, help="pixels of the page kept from the top")
    args = parser.parse_args(argv)
    binary = find_chromium()
    if binary is None:
        print("error: no Chromium (install the Debian package `chromium`)", file=sys.stderr)
        return 1
    screenshot(binary, args.index, args.out, args.max_height)
    print(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
