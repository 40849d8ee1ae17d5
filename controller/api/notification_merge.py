"""The one merge of ``status.notifications``: two writers, one state.

Two writers share ``status.notifications``: the reconciler (through the engine) appends
announcements to the outbox; the notification dispatcher claims entries, moves delivered
ones to ``sent`` and records threads, incidents and errors. Each writes with the
resourceVersion it read; on a conflict it re-reads and applies its own changes *by key* to
the state as stored now (never its stale copy), with :func:`merge_notifications`. Both sides
import it from here (``api`` is pure: importable by the reconciler and by the adapters).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Final

from controller.api.notifications import (
    MAX_SENT_KEYS,
    NotificationState,
    OpenIncident,
    OutgoingMessage,
    SlackThread,
)

__all__ = ["KEEP", "Keep", "merge_notifications"]


class Keep:
    """The marker for "leave this field as stored"."""

    def __repr__(self) -> str:
        return "KEEP"


KEEP: Final = Keep()

#: the new version of a stored outbox entry, or None when it is done (it moves to ``sent``)
EntryUpdate = Callable[[OutgoingMessage], OutgoingMessage | None]


def merge_notifications(
    fresh: NotificationState,
    *,
    added: Sequence[OutgoingMessage] = (),
    update: EntryUpdate | None = None,
    done: Iterable[str] = (),
    slack: SlackThread | Keep | None = KEEP,
    incident: OpenIncident | Keep | None = KEEP,
    failures: int = 0,
    last_error: str | Keep | None = KEEP,
) -> NotificationState:
    """FRESH (the state as stored now) with one writer's changes applied by key.

    * ``added``: new outbox entries, appended unless their key is already in the outbox or
      in ``sent`` (the other writer may have delivered them meanwhile);
    * ``update``: applied to each stored outbox entry; None moves its key to ``sent``;
    * ``done``: keys this writer finished whose entries are no longer stored: recorded in
      ``sent`` if missing;
    * ``slack``: the thread, unless the stored one belongs to a newer run (a pass that
      started before a new run must not take its thread away);
    * ``incident``, ``last_error``: replace the stored value; ``failures`` is added.

    ``sent`` keeps the last ``MAX_SENT_KEYS`` keys.
    """
    sent = list(fresh.sent)
    outbox: list[OutgoingMessage] = []
    for e in fresh.outbox:
        new = update(e) if update is not None else e
        if new is None:
            if e.key not in sent:
                sent.append(e.key)
        else:
            outbox.append(new)
    stored = {e.key for e in fresh.outbox}
    for key in done:
        if key not in sent and key not in stored:
            sent.append(key)
    known = stored | set(sent)
    outbox += [m for m in added if m.key not in known]
    changes: dict[str, object] = {
        "outbox": outbox,
        "sent": sent[-MAX_SENT_KEYS:],
        "failures": fresh.failures + failures,
    }
    if not isinstance(slack, Keep):
        theirs = fresh.slack
        if slack is None or theirs is None or theirs.run <= slack.run:
            changes["slack"] = slack
    if not isinstance(incident, Keep):
        changes["incident"] = incident
    if not isinstance(last_error, Keep):
        changes["last_error"] = last_error
    return fresh.model_copy(update=changes)
