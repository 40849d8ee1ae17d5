"""The test harness: the local control plane, Prometheus, stand-ins, demo services, the
sandbox, the chaos and scale worlds, fakes and builders, and the pytest plugin.

It lives in the repository, next to the tests, and is not part of the ``rolloutctl`` wheel
or image: no product module may import it (an import-linter contract in pyproject.toml).
It imports the product (``controller``) and dev-only libraries (pytest, aiosmtpd) freely.
Code run from a clone (pytest, ``python -m bench.X``, ``scripts/sandbox``) finds it on
``sys.path``; a process it starts with ``python -m tests.harness.X`` gets the repository
on ``PYTHONPATH`` through :func:`python_env`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def python_env(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """ENV (default: this process's environment) with the repository first on PYTHONPATH,
    so that ``python -m tests.harness.X`` works whatever the child's working directory."""
    base = dict(os.environ if env is None else env)
    rest = base.get("PYTHONPATH", "")
    base["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), rest) if p)
    return base
