"""The dependency rule: engine and api import no client library and read no clock."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PURE = [REPO / "controller" / "engine", REPO / "controller" / "api"]
CLOCK_CALLS = {
    ("datetime", "now"), ("datetime", "utcnow"), ("datetime", "today"), ("date", "today"),
    ("time", "time"), ("time", "monotonic"), ("time", "perf_counter"), ("time", "sleep"),
    ("time", "time_ns"), ("time", "monotonic_ns"),
}
FORBIDDEN_IMPORTS = {"time", "random", "os", "socket", "threading", "subprocess", "asyncio"}


def pure_files() -> list[Path]:
    return [p for d in PURE for p in sorted(d.rglob("*.py"))]


def test_pure_packages_read_no_clock_and_do_no_io() -> None:
    problems = []
    for path in pure_files():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import | ast.ImportFrom):
                names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                         else [node.module or ""])
                for name in names:
                    if name.split(".")[0] in FORBIDDEN_IMPORTS:
                        problems.append(f"{path.relative_to(REPO)}:{node.lineno} imports {name}")
            if isinstance(node, ast.Call):
                func = node.func
                if (isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name)
                        and (func.value.id, func.attr) in CLOCK_CALLS):
                    problems.append(f"{path.relative_to(REPO)}:{node.lineno} calls "
                                    f"{func.value.id}.{func.attr}()")
                if isinstance(func, ast.Name) and func.id in {"open", "print", "input"}:
                    problems.append(f"{path.relative_to(REPO)}:{node.lineno} calls {func.id}()")
    assert problems == []


def test_the_check_catches_a_clock_read(tmp_path: Path) -> None:
    # The check above must be able to fail: the same walk flags a module reading the clock.
    bad = "from datetime import datetime\n\ndef f():\n    return datetime.now()\n"
    tree = ast.parse(bad)
    calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call)
             and isinstance(n.func, ast.Attribute) and isinstance(n.func.value, ast.Name)
             and (n.func.value.id, n.func.attr) in CLOCK_CALLS]
    assert len(calls) == 1


def test_import_contracts_hold() -> None:
    lint = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run([str(lint)], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
