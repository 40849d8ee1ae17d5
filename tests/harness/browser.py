"""Headless Debian chromium driven by Playwright-for-Python, for the dashboard's tests and
benchmark.

The browser is the system's (``/usr/bin/chromium``, from ``apt-get install chromium``;
``$ROLLOUTCTL_CHROMIUM`` overrides it): Playwright only drives it, and
``playwright install`` is never needed. Each browser gets a fresh profile directory and
the flags below (no GPU, no QUIC, no background traffic to Google).

Also ``start_dashboard``: ``rolloutctl dashboard`` as a subprocess, its URL read from its
first line, stopped by its PID.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage",
]


class BrowserUnavailable(RuntimeError):
    pass


def chromium_path() -> str:
    """The chromium binary, or BrowserUnavailable saying how to get it."""
    wanted = os.environ.get("ROLLOUTCTL_CHROMIUM")
    for candidate in ([wanted] if wanted else []) + ["/usr/bin/chromium", "chromium"]:
        found = shutil.which(candidate) if candidate else None
        if found:
            return found
    raise BrowserUnavailable("no chromium: install Debian's with `apt-get install chromium` "
                             "(scripts/setup does)")


@contextmanager
def chromium(profile_dir: Path, width: int = 1280, height: int = 900) -> Iterator[Any]:
    """A Playwright BrowserContext on headless chromium with a fresh profile in PROFILE_DIR."""
    path = chromium_path()
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as exc:
        raise BrowserUnavailable("no Playwright: `pip install -e '.[dev]'` installs it "
                                 f"({exc})") from None
    shutil.rmtree(profile_dir, ignore_errors=True)
    profile_dir.mkdir(parents=True)
    with sync_playwright() as pw:
        try:
            context = pw.chromium.launch_persistent_context(
                str(profile_dir), executable_path=path, headless=True, args=CHROMIUM_FLAGS,
                viewport={"width": width, "height": height}, timeout=60_000)
        except Exception as exc:  # Playwright's Error: the browser did not start
            raise BrowserUnavailable(f"chromium at {path} did not start: {exc}") from None
        try:
            yield context
        finally:
            context.close()


class RunningDashboard:
    def __init__(self, process: subprocess.Popen[str], url: str) -> None:
        self.process = process
        self.url = url

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)


def start_dashboard(kubeconfig: Path, *args: str, timeout: float = 60.0) -> RunningDashboard:
    """``rolloutctl dashboard --no-browser --port 0`` as KUBECONFIG's user; waits for its URL."""
    command = [str(Path(sys.executable).with_name("rolloutctl")), "dashboard", "--kubeconfig",
               str(kubeconfig), "--no-browser", "--port", "0", *args]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               stdin=subprocess.DEVNULL, text=True)
    assert process.stdout is not None
    deadline = time.monotonic() + timeout
    lines = []
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        lines.append(line)
        match = re.search(r"(http://127\.0\.0\.1:\d+/)", line)
        if match:
            return RunningDashboard(process, match.group(1))
    process.kill()
    process.wait(10)
    raise RuntimeError("rolloutctl dashboard did not print its URL: " + "".join(lines)[-2000:])


def main() -> None:
    """``python -m tests.harness.browser URL FILE.png [URL FILE.png ...]``: full-page
    screenshots in headless chromium (how docs/dashboard-*.png were taken from the
    sandbox)."""
    import argparse
    import tempfile

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("pairs", nargs="+", metavar="URL FILE")
    parser.add_argument("--width", type=int, default=1280)
    args = parser.parse_args()
    if len(args.pairs) % 2:
        parser.error("give URL FILE pairs")
    with tempfile.TemporaryDirectory() as scratch, \
            chromium(Path(scratch) / "profile", width=args.width) as browser:
        page = browser.new_page()
        for url, file in zip(args.pairs[::2], args.pairs[1::2], strict=True):
            page.goto(url, wait_until="load")
            page.screenshot(path=file, full_page=True)
            print(f"{url} -> {file}")


if __name__ == "__main__":
    main()
