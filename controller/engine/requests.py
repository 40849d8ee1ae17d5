"""Operator requests (``spec.requests``): each kind's latest request is acted on once, by id;
``status.handled`` holds the ids already acted on."""

from __future__ import annotations

from typing import Literal, overload

from controller.api.plan import DrillRequest, Handled, PromoteRequest, Request, Requests

RequestKind = Literal["promote", "resume", "abort", "retry", "drill"]
REQUEST_KINDS: tuple[RequestKind, ...] = ("promote", "resume", "abort", "retry", "drill")


def any_request(requests: Requests) -> bool:
    """Does the spec carry a request of any kind? (most plans carry none)"""
    r = requests
    return not (r.promote is None and r.resume is None and r.abort is None
                and r.retry is None and r.drill is None)


@overload
def pending(requests: Requests, handled: Handled, kind: Literal["promote"]
            ) -> PromoteRequest | None: ...
@overload
def pending(requests: Requests, handled: Handled, kind: Literal["drill"]
            ) -> DrillRequest | None: ...
@overload
def pending(requests: Requests, handled: Handled, kind: RequestKind) -> Request | None: ...
def pending(requests: Requests, handled: Handled, kind: RequestKind) -> Request | None:
    """KIND's request when not yet acted on."""
    request: Request | None = getattr(requests, kind)
    if request is None or getattr(handled, kind) == request.id:
        return None
    return request


def handle(handled: Handled, kind: RequestKind, request: Request) -> Handled:
    """HANDLED with KIND's REQUEST marked as acted on."""
    return handled.model_copy(update={kind: request.id})
