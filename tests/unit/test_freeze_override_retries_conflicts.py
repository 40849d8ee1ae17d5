"""``freeze override`` writes with the resourceVersion it read; a 409 re-reads and writes
again (tenacity, ``controller.adapters.retrying``), up to five tries, with no waiting."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from typer.testing import CliRunner

from controller.adapters.retrying import retry_conflicts
from controller.cli import freeze
from controller.cli.errors import CliError
from controller.cli.main import app
from controller.errors import Conflict, NotFound, Transient

runner = CliRunner()


def test_a_conflict_is_tried_again_at_once_and_the_result_returned() -> None:
    calls: list[int] = []
    slept: list[float] = []

    def call() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise Conflict("changed", "Conflict")
        return "written"

    assert retry_conflicts(call, attempts=5, sleep=slept.append) == "written"
    assert len(calls) == 3
    assert all(s == 0 for s in slept)  # tried again at once: no backoff


def test_the_last_conflict_is_raised_after_the_attempts() -> None:
    calls: list[int] = []

    def call() -> None:
        calls.append(1)
        raise Conflict(f"changed {len(calls)}", "Conflict")

    with pytest.raises(Conflict, match="changed 4"):
        retry_conflicts(call, attempts=4, sleep=lambda _: None)
    assert len(calls) == 4


@pytest.mark.parametrize("error", [NotFound("gone", "NotFound"), Transient("down", "Down"),
                                   ValueError("bad")])
def test_other_errors_are_not_retried(error: Exception) -> None:
    calls: list[int] = []

    def call() -> None:
        calls.append(1)
        raise error

    with pytest.raises(type(error)):
        retry_conflicts(call, attempts=5, sleep=lambda _: None)
    assert calls == [1]


class FakeStore:
    """A policy whose patch conflicts CONFLICTS times (a writer racing each read)."""

    def __init__(self, conflicts: int) -> None:
        self.conflicts = conflicts
        self.version = 1
        self.overrides: list[dict[str, Any]] = []
        self.patches: list[str] = []

    def raw(self) -> dict[str, Any]:
        return {"metadata": {"resourceVersion": str(self.version)},
                "spec": {"overrides": list(self.overrides)}}

    def patch_spec(self, kind: str, namespace: str, name: str, patch: dict[str, Any],
                   resource_version: str | None = None) -> dict[str, Any]:
        self.patches.append(str(resource_version))
        if self.conflicts > 0:
            self.conflicts -= 1
            self.version += 1  # someone else wrote in between
            raise Conflict("changed", "Conflict")
        assert resource_version == str(self.version)
        self.overrides = patch["overrides"]
        self.version += 1
        return self.raw()


class FakeSession:
    namespace = "shop"

    def __init__(self, store: FakeStore) -> None:
        self.store = store

    def raw(self, kind: str, name: str) -> dict[str, Any]:
        return self.store.raw()

    def user(self) -> str:
        return "alice"

    def _not_found(self, kind: str, name: str) -> str:
        return f"{kind} {name} not found"


def run_override(monkeypatch: pytest.MonkeyPatch, store: FakeStore) -> Any:
    @contextmanager
    def fake_session(opts: Any) -> Iterator[FakeSession]:
        yield FakeSession(store)

    monkeypatch.setattr("controller.cli.session.session", fake_session)
    return runner.invoke(app, ["freeze", "override", "platform", "--reason", "hotfix",
                               "--expires", "2h"])


def test_override_rereads_and_writes_again_after_a_conflict(
        monkeypatch: pytest.MonkeyPatch) -> None:
    store = FakeStore(conflicts=2)
    result = run_override(monkeypatch, store)
    assert result.exit_code == 0, result.output
    assert store.patches == ["1", "2", "3"]  # each try carries the version it read
    assert [o["reason"] for o in store.overrides] == ["hotfix"]
    assert "on SLOPolicy shop/platform by alice" in result.output


def test_override_gives_up_after_five_conflicts_with_one_line(
        monkeypatch: pytest.MonkeyPatch) -> None:
    store = FakeStore(conflicts=freeze.CONFLICT_RETRIES)
    result = run_override(monkeypatch, store)
    # the real session prints a CliError as one line with exit code 2 (cli/errors.py)
    assert isinstance(result.exception, CliError)
    assert str(result.exception) == (
        "SLOPolicy platform kept changing while the override was written (5 tries); try again")
    assert len(store.patches) == freeze.CONFLICT_RETRIES
    assert store.overrides == []
