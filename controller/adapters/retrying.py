"""Retrying a call in place, with tenacity (the project's retry library).

Only what the CLI and adapters retry where they stand lives here; the controller's own
retries go through the work queue's per-key backoff (``controller.runtime.workqueue``).
``sleep`` is injectable so that unit tests never wait.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_none

from controller.errors import Conflict

T = TypeVar("T")


def retry_conflicts(call: Callable[[], T], *, attempts: int,
                    sleep: Callable[[float], None] = time.sleep) -> T:
    """CALL's result, calling it again at once (up to ATTEMPTS calls in all) while it raises
    :class:`controller.errors.Conflict`: a read-modify-write that lost a race re-reads and
    writes again. Any other exception goes through at once; the last Conflict is raised."""
    retrying = Retrying(
        stop=stop_after_attempt(attempts),
        wait=wait_none(),
        retry=retry_if_exception_type(Conflict),
        sleep=sleep,
        reraise=True,
    )
    return retrying(call)
