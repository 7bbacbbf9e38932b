"""Open the page in headless Chromium over the DevTools protocol (a pipe: no extra dependency), collect
console errors, check that tables and images render, and take a full-page screenshot."""
from __future__ import annotations

import base64
import json
import os
import select
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from results.records import write_atomic

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars",
         "--remote-debugging-pipe")
# What the page must show, measured in the browser: rendered size, not just presence in the DOM.
PROBE_JS = """JSON.stringify({
  tables: document.querySelectorAll('table').length,
  visibleTables: [...document.querySelectorAll('table')].filter(t => t.offsetWidth > 0 && t.offsetHeight > 0).length,
  images: document.images.length,
  loadedImages: [...document.images].filter(i => i.complete && i.naturalWidth > 0 && i.offsetWidth > 0).length,
  claims: !!document.querySelector('#t-claims table'),
  title: document.title,
  height: document.documentElement.scrollHeight
})"""


def find_chromium() -> str | None:
    for name in CHROMIUM_NAMES:
        if path := shutil.which(name):
            return path
    return None


@dataclass
class PageCheck:
    errors: list[str] = field(default_factory=list)  # console errors, uncaught exceptions, failed loads
    probe: dict = field(default_factory=dict)
    screenshot: Path | None = None


class _Pipe:
    """NUL-delimited JSON messages over Chromium's --remote-debugging-pipe (fds 3 and 4 in the child)."""

    def __init__(self, write_fd: int, read_fd: int, deadline: float):
        self.write_fd, self.read_fd, self.deadline = write_fd, read_fd, deadline
        self.buffer, self.next_id, self.events = b"", 0, []

    def send(self, method: str, params: dict | None = None, session: str | None = None) -> dict:
        self.next_id += 1
        message = {"id": self.next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self.write_fd, json.dumps(message).encode() + b"\0")
        while True:
            reply = self._read()
            if reply.get("id") == self.next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def wait_event(self, method: str) -> dict:
        while True:
            for i, event in enumerate(self.events):
                if event.get("method") == method:
                    return self.events.pop(i)
            self.events.append(self._read())

    def _read(self) -> dict:
        while b"\0" not in self.buffer:
            remaining = self.deadline - time.monotonic()
            if remaining <= 0 or not select.select([self.read_fd], [], [], remaining)[0]:
                raise TimeoutError("chromium did not answer in time")
            chunk = os.read(self.read_fd, 1 << 20)
            if not chunk:
                raise RuntimeError("chromium closed the DevTools pipe")
            self.buffer += chunk
        message, self.buffer = self.buffer.split(b"\0", 1)
        return json.loads(message)


def _errors(events: list[dict]) -> list[str]:
    found = []
    for e in events:
        method, params = e.get("method"), e.get("params", {})
        if method == "Runtime.exceptionThrown":
            details = params.get("exceptionDetails", {})
            found.append(f"exception: {details.get('text')} {details.get('exception', {}).get('description', '')}")
        elif method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            found.append(f"console.{params['type']}: {[a.get('value') for a in params.get('args', [])]}")
        elif method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
            found.append(f"log: {params['entry'].get('text')} {params['entry'].get('url', '')}")
    return found


def _drive(pipe: _Pipe, url: str, width: int, max_height: int, screenshot: Path | None) -> PageCheck:
    target = pipe.send("Target.createTarget", {"url": "about:blank"})["targetId"]
    session = pipe.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
    for domain in ("Page", "Runtime", "Log"):
        pipe.send(f"{domain}.enable", session=session)
    pipe.send("Emulation.setDeviceMetricsOverride",
              {"width": width, "height": 900, "deviceScaleFactor": 1, "mobile": False}, session)
    pipe.events.clear()
    pipe.send("Page.navigate", {"url": url}, session)
    pipe.wait_event("Page.loadEventFired")
    result = pipe.send("Runtime.evaluate", {"expression": PROBE_JS, "returnByValue": True}, session)
    check = PageCheck(probe=json.loads(result["result"]["value"]))
    if screenshot is not None:
        height = min(int(check.probe["height"]), max_height)
        pipe.send("Emulation.setDeviceMetricsOverride",
                  {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False}, session)
        shot = pipe.send("Page.captureScreenshot", {"format": "png"}, session)
        png = base64.b64decode(shot["data"])
        write_atomic(screenshot, lambda fh: fh.write(png))  # as every report file: whole or not at all
        check.screenshot = screenshot
    check.errors = _errors([e for e in pipe.events if e.get("sessionId") == session])
    return check


def check_page(page: Path, screenshot: Path | None = None, width: int = 1400, max_height: int = 16000,
               timeout_s: float = 60.0, chromium: str | None = None) -> PageCheck:
    """Load `page` in headless Chromium; raises FileNotFoundError when no Chromium is installed."""
    binary = chromium or find_chromium()
    if binary is None:
        raise FileNotFoundError("no chromium binary on PATH (apt-get install chromium)")
    to_child_r, to_child_w = os.pipe()
    from_child_r, from_child_w = os.pipe()
    with tempfile.TemporaryDirectory(prefix="report-chromium-") as profile:
        # The shell puts our pipe ends on fds 3 and 4, where --remote-debugging-pipe expects them.
        cmd = ["bash", "-c", f'exec "$0" "$@" 3<&{to_child_r} 4>&{from_child_w}', binary, *FLAGS,
               f"--user-data-dir={profile}", "about:blank"]
        proc = subprocess.Popen(cmd, pass_fds=(to_child_r, from_child_w), stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(to_child_r)
        os.close(from_child_w)
        pipe = _Pipe(to_child_w, from_child_r, time.monotonic() + timeout_s)
        try:
            return _drive(pipe, Path(page).resolve().as_uri(), width, max_height, screenshot)
        finally:
            try:
                pipe.deadline = time.monotonic() + 5
                pipe.send("Browser.close")
            except (OSError, RuntimeError, TimeoutError):
                pass
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            os.close(to_child_w)
            os.close(from_child_r)
