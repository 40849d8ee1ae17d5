"""The engine stays readable and typed: no function over 60 lines, and the status under
construction is a typed draft whose fields are exactly the status model's."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import controller.engine
from controller.api.plan import RolloutPlanStatus
from controller.engine.draft import FIELDS, StatusDraft
from tests.harness import builders as b

MAX_LINES = 60
ENGINE = Path(controller.engine.__file__).parent


def long_functions(root: Path, limit: int) -> list[str]:
    found = []
    for path in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                assert node.end_lineno is not None
                lines = node.end_lineno - node.lineno + 1
                if lines > limit:
                    found.append(f"{path.relative_to(root.parent.parent)}:{node.lineno} "
                                 f"{node.name} ({lines} lines)")
    return found


def test_no_engine_function_is_longer_than_60_lines() -> None:
    too_long = long_functions(ENGINE, MAX_LINES)
    assert not too_long, (f"engine functions over {MAX_LINES} lines (split them by what "
                          "they decide): " + "; ".join(too_long))


def test_the_check_names_a_long_function(tmp_path: Path) -> None:
    pkg = tmp_path / "controller" / "engine"
    pkg.mkdir(parents=True)
    body = "".join(f"    x{i} = {i}\n" for i in range(MAX_LINES))
    (pkg / "m.py").write_text(f"def short():\n    return 1\n\n\ndef stretched():\n{body}")
    assert long_functions(pkg, MAX_LINES) == [
        f"controller/engine/m.py:5 stretched ({MAX_LINES + 1} lines)"]


def test_the_draft_has_exactly_the_status_fields() -> None:
    assert set(FIELDS) == set(RolloutPlanStatus.model_fields)


def test_a_misspelt_field_fails_at_run_time_not_silently() -> None:
    draft = StatusDraft.of(b.plan().status)
    with pytest.raises(AttributeError):
        draft.canary_wieght = 10  # type: ignore[attr-defined]
    draft.canary_weight = 10
    status = draft.build(b.plan().status)
    assert status.canary_weight == 10


def test_an_unchanged_draft_builds_the_same_status_object() -> None:
    old = b.plan().status
    assert StatusDraft.of(old).build(old) is old
