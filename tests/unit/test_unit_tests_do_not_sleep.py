"""Unit tests never sleep and never assert a wall-clock duration: under load timing is noise.
They move a fake clock (``FakeClock`` in tests/harness/fakes.py) or wait for the state
they assert (a condition, a socket, a join with a deadline); timing goals live in bench/.

Read with ``ast``, each file under tests/unit: a call to ``time.sleep`` or ``asyncio.sleep``
(however imported), ``threading.Event().wait(...)`` (a sleep in disguise), a ``wait`` or
``join`` with a literal timeout under a second (a pause, not a deadline), and an ``assert``
on a wall-clock duration: a difference with ``time.monotonic()``/``time.time()``/
``time.perf_counter()`` in it, or a name assigned one (``elapsed = time.monotonic() - t0``).
A deadline (``assert time.monotonic() < deadline``) is not a duration.
"""

from __future__ import annotations

import ast
from pathlib import Path

UNIT = Path(__file__).resolve().parent

#: files allowed to sleep, named relative to tests/unit (none: inject a clock)
STILL_SLEEPING: set[str] = set()

CLOCKS = {"monotonic", "time", "perf_counter", "monotonic_ns", "time_ns", "perf_counter_ns"}


def _dotted(node: ast.AST) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    if isinstance(node, ast.Call):
        return f"{_dotted(node.func)}()"
    return "?"


def _sleep_names(tree: ast.Module) -> set[str]:
    """The names ``sleep`` is bound to by ``from time/asyncio import sleep [as x]``."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module in ("time", "asyncio"):
            names.update(a.asname or a.name for a in node.names if a.name == "sleep")
    return names


def _short_literal(call: ast.Call) -> bool:
    args = [*call.args, *(k.value for k in call.keywords if k.arg == "timeout")]
    return any(isinstance(a, ast.Constant) and isinstance(a.value, int | float)
               and not isinstance(a.value, bool) and 0 < a.value < 1 for a in args)


def _is_clock(node: ast.AST) -> bool:
    return (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
            and node.func.attr in CLOCKS and _dotted(node.func.value) == "time")


def _is_duration(node: ast.AST, durations: set[str]) -> bool:
    """NODE holds a wall-clock duration: a subtraction reading the clock, or such a name."""
    for inner in ast.walk(node):
        if isinstance(inner, ast.Name) and inner.id in durations:
            return True
        if (isinstance(inner, ast.BinOp) and isinstance(inner.op, ast.Sub)
                and any(_is_clock(n) for n in ast.walk(inner))):
            return True
    return False


def offences(source: str) -> list[tuple[int, str]]:
    """(line, what) for each sleep or wall-clock assertion in SOURCE."""
    tree = ast.parse(source)
    sleeps = _sleep_names(tree)
    durations = {t.id for node in ast.walk(tree) if isinstance(node, ast.Assign)
                 and _is_duration(node.value, set())
                 for t in node.targets if isinstance(t, ast.Name)}
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            name = _dotted(node.func)
            if name in ("time.sleep", "asyncio.sleep") or name in sleeps:
                found.append((node.lineno, f"{name}(...): move a FakeClock or wait for a state"))
            elif name.endswith("Event().wait"):
                found.append((node.lineno, f"{name}(...) is a sleep: wait for a state"))
            elif name.rsplit(".", 1)[-1] in ("wait", "join") and _short_literal(node):
                found.append((node.lineno, f"{name}(<1 s) is a pause: wait for the state "
                                           "with a deadline"))
        elif isinstance(node, ast.Assert) and _is_duration(node.test, durations):
            found.append((node.lineno, "assert on a wall-clock duration (timing goals live "
                                       "in bench/; move a FakeClock)"))
    return sorted(found)


def test_no_unit_test_sleeps_or_asserts_a_wall_clock_duration() -> None:
    problems = []
    for path in sorted(UNIT.rglob("*.py")):
        name = path.relative_to(UNIT).as_posix()
        if name in STILL_SLEEPING:
            continue
        for line, what in offences(path.read_text()):
            problems.append(f"tests/unit/{name}:{line}: {what}")
    assert problems == []


def test_the_exclusions_still_sleep() -> None:
    """An excluded file that stopped sleeping leaves the list (it cannot hide a new sleep)."""
    for name in sorted(STILL_SLEEPING):
        path = UNIT / name
        assert not path.exists() or offences(path.read_text()), (
            f"tests/unit/{name} no longer sleeps: remove it from STILL_SLEEPING")


def test_the_scan_finds_each_kind_of_sleep() -> None:
    source = (
        "import time, asyncio, threading\n"
        "from time import sleep as nap\n"
        "time.sleep(1)\n"
        "async def f():\n"
        "    await asyncio.sleep(0.1)\n"
        "nap(2)\n"
        "threading.Event().wait(1)\n"
        "t.join(0.2)\n"
        "cond.wait(timeout=0.5)\n"
        "started = time.monotonic()\n"
        "assert time.monotonic() - started < 1.0\n"
        "elapsed = time.perf_counter() - started\n"
        "assert elapsed < 2\n"
        "t.join(10)\n"  # a deadline, not a pause
        "assert clock.monotonic() - started == 5\n"  # a fake clock
        "assert time.monotonic() < deadline\n"  # a deadline, not a duration
    )
    assert [line for line, _ in offences(source)] == [3, 5, 6, 7, 8, 9, 11, 13]
