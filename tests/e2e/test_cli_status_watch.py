"""`rolloutctl status --watch` in a real terminal (a pseudo-terminal 120x50) while the real
controller takes a release 10 -> 25 -> 50 -> 100 % and promotes it: the live view re-renders
with the step bars, the hold bar, the weight and the gate verdicts, and exits 0 when the
plan succeeds. Without --watch, `status` prints once and its exit code follows the plan."""

from __future__ import annotations

import fcntl
import os
import pty
import re
import select
import struct
import subprocess
import termios
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.harness.fixtures import TestCluster
from tests.harness.stack import Stack, rollout_plan, rolloutctl_binary

from .test_cli_harness import rolloutctl, running_stack, start_controller

pytestmark = [pytest.mark.cluster, pytest.mark.prometheus, pytest.mark.slow]

COLUMNS, ROWS = 120, 50
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07")
# rich's Live moves the cursor back over the previous frame before drawing the next one
FRAME_START = re.compile(r"(?:\r?\x1b\[2K\x1b\[1A)+\x1b\[2K|\r\x1b\[\d+A")


@pytest.fixture
def stack(cluster: TestCluster, namespace: str, tmp_path: Path) -> Iterator[Stack]:
    with running_stack(cluster, namespace, tmp_path / "stack") as s:
        yield s


def run_in_terminal(argv: list[str], timeout: float, on_start: object = None
                    ) -> tuple[int, str]:
    """Run ARGV attached to a pseudo-terminal of COLUMNS x ROWS; its exit code and output."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", ROWS, COLUMNS, 0, 0))
    env = {**os.environ, "TERM": "xterm-256color", "COLUMNS": str(COLUMNS),
           "LINES": str(ROWS)}
    for name in ("NO_COLOR", "COLORTERM", "FORCE_COLOR"):
        env.pop(name, None)
    process = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, env=env,
                               close_fds=True, start_new_session=True)
    os.close(slave)
    if callable(on_start):
        on_start()
    chunks: list[bytes] = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.2)
            if ready:
                try:
                    data = os.read(master, 65536)
                except OSError:  # the child closed the terminal
                    data = b""
                if not data and process.poll() is not None:
                    break
                chunks.append(data)
            elif process.poll() is not None:
                break
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=10)
        os.close(master)
    return process.returncode, b"".join(chunks).decode("utf-8", errors="replace")


SGR = re.compile(r"\x1b\[([0-9;]*)m")
BAR_BACK = "38;5;237"  # rich's bar.back (grey23) in 256 colours: the part still to go


def plain(text: str) -> str:
    return ANSI.sub("", text).replace("\r", "").rstrip()


def frames(raw: str) -> list[str]:
    """Each re-render, escape sequences kept (``plain`` removes them)."""
    return [part for part in FRAME_START.split(raw) if plain(part).strip()]


def line_of(frame: str, prefix: str) -> str:
    """The line of FRAME starting with PREFIX, as plain text."""
    return plain(raw_line(frame, prefix))


def raw_line(frame: str, prefix: str) -> str:
    return next(line for line in frame.splitlines() if plain(line).startswith(prefix))


def filled(line: str) -> int:
    """How many bar cells of LINE are drawn as done (not in the bar's back colour)."""
    count, style = 0, ""
    for i, piece in enumerate(SGR.split(line)):
        if i % 2:
            style = piece
        elif style != BAR_BACK:
            count += sum(piece.count(c) for c in "━╸")
    return count


def test_status_watch_renders_the_run_live_until_it_succeeds(stack: Stack) -> None:
    stack.apply(rollout_plan(stack.service, "platform", hold="5s"))
    start_controller(stack)
    stack.wait_for(lambda: stack.status().get("reason") == "NoNewRevision", 90,
                   "the plan to see nothing to roll out")
    argv = [rolloutctl_binary(), "status", "checkout", "--watch", "--timeout", "4m",
            "--interval", "0.5", "--kubeconfig", str(stack.kubeconfig), "-n", stack.namespace]
    code, raw = run_in_terminal(argv, timeout=300, on_start=lambda: stack.release("v2"))
    assert "\x1b[" in raw, "not rendered for a terminal"
    views = frames(raw)
    assert code == 0, "\n=====\n".join(plain(v) for v in views[-3:])
    assert len(views) > 20, "the view did not re-render"
    for frame in views:
        assert all(len(plain(line)) <= COLUMNS for line in frame.splitlines())

    # while at step 2: step 1 done (a full bar), step 2 current with a partial hold bar,
    # the weight 25/75, and the gate's verdict with its value against the objective
    at_25 = [f for f in views if "canary 25%" in plain(f) and "api_availability" in plain(f)
             and "Pass" in line_of(f, "api_availability")]
    assert at_25, "no frame at 25 % with a passing gate"
    frame = at_25[-1]
    assert filled(raw_line(frame, "step 1")) == 30 and line_of(frame, "step 1").endswith("done")
    assert line_of(frame, "step 2").endswith("current")
    assert filled(raw_line(frame, "step 3")) == 0 and line_of(frame, "step 3").endswith("to come")
    hold = line_of(frame, "hold")
    m = re.search(r"(\d+(\.\d+)?)s/5s", hold)
    assert m, hold
    assert filled(raw_line(frame, "hold")) == pytest.approx(30 * float(m.group(1)) / 5, abs=1)
    assert "stable 75%" in line_of(frame, "weight")
    gate = line_of(frame, "api_availability")
    assert re.search(r"Pass\s+\d+(\.\d+)?%\s+>= 99%", gate), gate
    # the weights the view went through, in order
    seen = []
    for f in views:
        m = re.search(r"^weight\s+canary (\d+)%", plain(f), re.M)
        if m and (not seen or seen[-1] != int(m.group(1))):
            seen.append(int(m.group(1)))
    assert [w for w in seen if w] == [10, 25, 50, 100], seen
    last = views[-1]
    assert "phase Succeeded" in plain(last)
    assert all(line_of(last, f"step {i}").endswith("done") for i in range(1, 5))
    # printed once, without --watch: the same view and exit code 0
    once = rolloutctl(stack, "status", "checkout")
    assert once.returncode == 0 and "phase Succeeded" in once.stdout
    assert "\x1b[" not in once.stdout  # not a terminal: plain text


def test_status_watch_times_out_with_exit_code_2(stack: Stack) -> None:
    stack.apply(rollout_plan(stack.service, "platform"))
    start_controller(stack)
    done = rolloutctl(stack, "status", "checkout", "--watch", "--timeout", "3s",
                      "--interval", "0.5")
    assert done.returncode == 2
    assert "timed out after 3s" in done.stdout
