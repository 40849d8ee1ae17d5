"""The error-budget freeze and the budgets: ``freeze status``, ``freeze override``,
``budget``.

An override is appended to ``spec.overrides`` of the SLOPolicy with a JSON merge patch that
carries the resourceVersion read (a merge patch replaces the whole list, so a concurrent
writer would otherwise be lost); on a conflict the policy is read again and the patch
retried (``controller.adapters.retrying``, up to ``CONFLICT_RETRIES`` tries).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import typer

from controller.cli.errors import CliError, reported
from controller.cli.options import (
    AllNamespaces,
    ClusterOptions,
    Context,
    Document,
    Kubeconfig,
    Namespace,
)

CONFLICT_RETRIES = 5

freeze_app = typer.Typer(
    name="freeze", help="The error-budget release freeze: its state and break-glass overrides.",
    no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)


def _now() -> datetime:
    return datetime.now(UTC)


def _policies(s: Any, name: str | None) -> list[Any]:
    if name is not None:
        return [s.policy(name)]
    policies = sorted(s.policies(), key=lambda p: (p.metadata.namespace, p.metadata.name))
    if not policies:
        where = "any namespace" if s.list_namespace is None else f"namespace {s.namespace}"
        raise CliError(f"no SLOPolicy found in {where}; create one (see policies/) or pass -n")
    return policies


def _print_document(policies: list[Any], output: Document, part: str) -> None:
    import json

    import yaml

    docs = [{"namespace": p.metadata.namespace, "name": p.metadata.name,
             part: p.model_dump(mode="json", by_alias=True, exclude_none=True)[part]}
            for p in policies]
    data: Any = docs[0] if len(docs) == 1 else docs
    text = (json.dumps(data, indent=2) + "\n" if output == Document.JSON
            else yaml.safe_dump(data, sort_keys=False))
    typer.echo(text, nl=False)


@freeze_app.command("status")
def freeze_status(
    policy: Annotated[str | None, typer.Argument(help="An SLOPolicy (default: all)")] = None,
    output: Annotated[Document | None, typer.Option("-o", "--output")] = None,
    kubeconfig: Kubeconfig = None, context: Context = None, namespace: Namespace = None,
    all_namespaces: AllNamespaces = False,
) -> None:
    """Frozen or not, why, the budget left, since when, and the active overrides.

    Exit code 0 whether frozen or not (a freeze is not an error), 2 on an error.
    """
    from controller.cli import render
    from controller.cli.session import session

    opts = ClusterOptions(kubeconfig, context, namespace, all_namespaces and policy is None)
    with session(opts) as s:
        policies = _policies(s, policy)
        if output is not None:
            _print_document(policies, output, "status")
            return
        render.emit(render.freeze_view(policies, _now()))


def override_entry(reason: str, expires: str, allow: list[str], by: str, now: datetime,
                   override_id: str) -> dict[str, Any]:
    """A validated ``spec.overrides[]`` entry; CliError (one line) for a bad argument."""
    from pydantic import ValidationError

    from controller.api.policy import Override
    from controller.api.types import Duration

    if not reason.strip():
        raise CliError("--reason must say why the freeze is overridden (it is empty)")
    if not expires.strip():
        raise CliError("--expires is required: how long the override lasts, e.g. 2h")
    try:
        seconds = Duration(expires).seconds
    except ValueError as exc:
        raise CliError(f"--expires: {exc}") from None
    if seconds <= 0:
        raise CliError(f"--expires must be a positive duration such as 2h (it is {expires})")
    until = (now + timedelta(seconds=seconds)).astimezone(UTC).replace(microsecond=0)
    try:
        entry = Override(id=override_id, reason=reason.strip(), expires=until,
                         allow=allow, by=by)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"])
        raise CliError(f"invalid override ({field}: {first['msg']})") from None
    wire = entry.model_dump(mode="json", by_alias=True)
    wire["expires"] = until.strftime("%Y-%m-%dT%H:%M:%SZ")  # RFC 3339, UTC
    return wire


def _validate_early(reason: str, expires: str, allow: list[str]) -> None:
    """Refuse bad arguments before touching the cluster."""
    override_entry(reason, expires, allow, "", _now(), "check")


@freeze_app.command("override")
def freeze_override(
    policy: Annotated[str, typer.Argument(help="The SLOPolicy")],
    reason: Annotated[str, typer.Option("--reason", help="Why (required, recorded).")] = "",
    expires: Annotated[str, typer.Option(
        "--expires", metavar="DURATION", help="How long the override lasts, e.g. 2h.")] = "",
    allow: Annotated[list[str] | None, typer.Option(
        "--allow", metavar="PLAN", help="Only these plans (repeat); default all.")] = None,
    kubeconfig: Kubeconfig = None, context: Context = None, namespace: Namespace = None,
) -> None:
    """Break glass: let runs start despite the freeze until it expires (recorded with who,
    why and until when)."""
    from controller.adapters.retrying import retry_conflicts
    from controller.cli.session import request_id, session
    from controller.errors import Conflict, NotFound

    allowed = list(allow or [])
    with reported():
        _validate_early(reason, expires, allowed)
    with session(ClusterOptions(kubeconfig, context, namespace)) as s:
        entry = override_entry(reason, expires, allowed, s.user(), _now(), request_id())

        def write_once() -> None:
            raw = s.raw("SLOPolicy", policy)
            current = list((raw.get("spec") or {}).get("overrides") or [])
            kept = _room_for_one(current, _now())
            s.store.patch_spec("SLOPolicy", s.namespace, policy, {"overrides": [*kept, entry]},
                               resource_version=raw["metadata"]["resourceVersion"])

        try:
            retry_conflicts(write_once, attempts=CONFLICT_RETRIES)
        except Conflict:
            raise CliError(f"SLOPolicy {policy} kept changing while the override was "
                           f"written ({CONFLICT_RETRIES} tries); try again") from None
        except NotFound:
            raise CliError(s._not_found("SLOPolicy", policy)) from None
        allow_text = ", ".join(allowed) if allowed else "all plans"
        typer.echo(f"override {entry['id']} on SLOPolicy {s.namespace}/{policy} by {s.user()} "
                   f"until {entry['expires']} for {allow_text}: {entry['reason']}")
        typer.echo(f"check it: rolloutctl freeze status {policy} -n {s.namespace}")


def _room_for_one(overrides: list[dict[str, Any]], now: datetime, limit: int = 32
                  ) -> list[dict[str, Any]]:
    """The overrides to keep so one more fits: expired ones go first, oldest first."""
    if len(overrides) < limit:
        return overrides

    def expired(o: dict[str, Any]) -> bool:
        try:
            return datetime.fromisoformat(str(o.get("expires"))) <= now
        except ValueError:
            return True

    kept = list(overrides)
    for o in [o for o in overrides if expired(o)]:
        if len(kept) < limit:
            break
        kept.remove(o)
    if len(kept) >= limit:
        raise CliError(f"the policy already has {limit} active overrides; remove one with "
                       "kubectl edit")
    return kept


def budget(
    policy: Annotated[str | None, typer.Argument(help="An SLOPolicy (default: all)")] = None,
    output: Annotated[Document | None, typer.Option("-o", "--output")] = None,
    kubeconfig: Kubeconfig = None, context: Context = None, namespace: Namespace = None,
    all_namespaces: AllNamespaces = False,
) -> None:
    """Per SLO: objective, window, budget left, error ratio, and each burn-rate alert's
    long and short rates against its factor (and whether it fires)."""
    from controller.cli import render
    from controller.cli.session import session

    opts = ClusterOptions(kubeconfig, context, namespace, all_namespaces and policy is None)
    with session(opts) as s:
        policies = _policies(s, policy)
        if output is not None:
            _print_document(policies, output, "status")
            return
        render.emit(render.budget_view(policies))
