"""Validation with messages that name the field and the fix.

``check_plan`` and ``check_policy`` return every problem of one object as
``Problem(path, message)``, where ``path`` is the wire path (``spec.steps[2].weight``).
``parse_plan`` / ``parse_policy`` return a model or raise ``InvalidSpec`` with the problems.
The controller, ``rolloutctl validate`` and the tests all go through here.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from controller.api import templates
from controller.api.plan import MIN_PROGRESS_DEADLINE, GateKind, RolloutPlan, RouterKind
from controller.api.policy import SLO, SLIKind, SLOPolicy
from controller.api.types import LABEL_VALUE_PATTERN, NAME_PATTERN, SLO_NAME_PATTERN


@dataclass(frozen=True, order=True)
class Problem:
    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class InvalidSpec(ValueError):
    """An object that cannot be acted on; ``problems`` says where and how to fix it."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("; ".join(str(p) for p in problems))


_PATTERN_HINTS = {
    NAME_PATTERN: "must be a lowercase name: a-z, 0-9, '-' and '.', starting and ending "
    "with a letter or digit",
    LABEL_VALUE_PATTERN: "must be safe as a Prometheus label value: letters, digits, '-', "
    "'_' and '.', starting and ending with a letter or digit",
    SLO_NAME_PATTERN: "must be lowercase letters, digits and '_', starting with a letter",
}


def path_of(loc: Iterable[int | str]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def _message(error: Mapping[str, Any]) -> str:
    kind = error["type"]
    msg = str(error["msg"])
    ctx = error.get("ctx") or {}
    if kind == "extra_forbidden":
        return "unknown field; remove it or check its spelling"
    if kind == "missing":
        return "required; add it"
    if kind == "string_pattern_mismatch":
        return _PATTERN_HINTS.get(ctx.get("pattern", ""), msg.replace("String should", "must"))
    if kind == "value_error":
        return msg.removeprefix("Value error, ")
    if kind in ("literal_error", "enum"):
        return msg.replace("Input should be", "must be one of").replace(" or ", ", ")
    for prefix in ("Input should be", "String should have", "List should have",
                   "Value should have"):
        if msg.startswith(prefix):
            return "must " + ("be" if prefix == "Input should be" else "have") + msg[
                len(prefix):
            ]
    return msg


def problems_from(exc: ValidationError, prefix: tuple[str | int, ...] = ()) -> list[Problem]:
    out = []
    for error in exc.errors(include_url=False):
        loc = prefix + tuple(error["loc"])
        # A failed union/tagged member appends the type name to loc; it is noise to users.
        loc = tuple(p for p in loc if not (isinstance(p, str) and p.startswith("function-")))
        out.append(Problem(path_of(loc), _message(error)))
    return out


# ----------------------------------------------------------------------------- plans


def without_nulls(doc: Any) -> Any:
    """The document as the API server stores it: a field set to null is dropped."""
    if isinstance(doc, Mapping):
        return {k: without_nulls(v) for k, v in doc.items() if v is not None}
    if isinstance(doc, list):
        return [without_nulls(v) for v in doc]
    return doc


def check_plan(doc: Mapping[str, Any]) -> tuple[RolloutPlan | None, list[Problem]]:
    """The parsed plan (None when it does not parse) and every problem found."""
    try:
        plan = RolloutPlan.model_validate(without_nulls(doc))
    except ValidationError as exc:
        return None, problems_from(exc)
    return plan, _plan_semantics(plan)


def _plan_semantics(plan: RolloutPlan) -> list[Problem]:
    spec = plan.spec
    problems: list[Problem] = []
    previous: int | None = None
    for i, step in enumerate(spec.steps):
        if step.mirror is not None:
            if step.weight:
                problems.append(Problem(
                    f"spec.steps[{i}]",
                    "set exactly one of weight or mirror (a mirror step sends no live traffic "
                    "to the canary): drop the weight",
                ))
            if previous is not None:
                problems.append(Problem(
                    f"spec.steps[{i}].mirror",
                    "mirror steps come before every weighted step: move it ahead of "
                    f"spec.steps[{i - 1}]",
                ))
        elif step.weight <= 0:
            problems.append(Problem(
                f"spec.steps[{i}].weight",
                "set weight (1-100, percent of requests to the canary) or mirror (1-100, "
                "percent of requests copied to it)",
            ))
        elif previous is not None and step.weight <= previous:
            problems.append(Problem(
                f"spec.steps[{i}].weight",
                f"must be greater than the previous step's weight ({previous})",
            ))
        if step.hold.seconds <= 0:
            problems.append(Problem(f"spec.steps[{i}].hold", "must be longer than 0, e.g. 5m"))
        if step.mirror is None and step.weight > 0:
            previous = step.weight
    if spec.steps and (spec.steps[-1].weight != 100 or spec.steps[-1].mirror is not None):
        problems.append(Problem(
            f"spec.steps[{len(spec.steps) - 1}].weight",
            f"the last step must send 100 % to the canary (it is {spec.steps[-1].weight}); "
            "add a final step with weight 100",
        ))
    problems += _routing_support(spec)

    ceiling = spec.analysis.error_ratio_ceiling
    if ceiling is not None and ceiling.value <= 0:
        problems.append(Problem(
            "spec.analysis.errorRatioCeiling",
            "must be above 0% (0% would roll back on the first failed request); e.g. 20%, "
            "or leave it out for no ceiling",
        ))

    routers = spec.traffic.routers()
    if len(routers) != 1:
        found = ", ".join(routers) if routers else "none"
        problems.append(Problem(
            "spec.traffic",
            f"set exactly one router (gatewayAPI, istio, nginx or replicas); found {found}",
        ))

    if spec.target.stable.name == spec.target.canary.name:
        problems.append(Problem(
            "spec.target.canary.name",
            "must differ from spec.target.stable.name: the canary is a second workload",
        ))

    seen: dict[str, int] = {}
    for i, gate in enumerate(spec.gates):
        kinds = gate.kinds()
        if len(kinds) != 1:
            problems.append(Problem(
                f"spec.gates[{i}]",
                "set exactly one of slo, canaryVsStable or probe"
                + (f" (found {', '.join(kinds)})" if kinds else ""),
            ))
            continue
        if gate.name in seen:
            problems.append(Problem(
                f"spec.gates[{i}]",
                f"duplicate gate {gate.name!r} (also spec.gates[{seen[gate.name]}]); remove one",
            ))
        seen[gate.name] = i
        if gate.slo_name is not None and spec.slo_policy_ref is None:
            problems.append(Problem(
                "spec.sloPolicyRef",
                f"required because spec.gates[{i}] names SLO {gate.slo_name!r}; "
                "add sloPolicyRef: {name: POLICY}",
            ))

    a = spec.analysis
    for field, d in (("interval", a.interval), ("window", a.window),
                     ("noDataTimeout", a.no_data_timeout)):
        if d.seconds <= 0:
            problems.append(Problem(f"spec.analysis.{field}", "must be longer than 0, e.g. 60s"))
    if a.progress_deadline.seconds < MIN_PROGRESS_DEADLINE:
        problems.append(Problem(
            "spec.analysis.progressDeadline",
            f"must be at least {MIN_PROGRESS_DEADLINE:g}s (pods need time to start), e.g. 10m"))
    return problems


def _routing_support(spec: Any) -> list[Problem]:
    """Header/cookie routes and mirror steps exist only where the router can express them."""
    routers = spec.traffic.routers()
    if len(routers) != 1:
        return []
    kind = routers[0]
    problems: list[Problem] = []
    if spec.traffic.match and kind == RouterKind.REPLICAS:
        problems.append(Problem(
            "spec.traffic.match",
            "the replicas router cannot route by header or cookie (a Service picks Pods at "
            "random): remove spec.traffic.match, or use gatewayAPI, istio or nginx",
        ))
    if kind == RouterKind.NGINX:
        headers = [i for i, m in enumerate(spec.traffic.match) if m.header is not None]
        cookies = [i for i, m in enumerate(spec.traffic.match) if m.cookie is not None]
        for kind_name, found in (("header", headers), ("cookie", cookies)):
            if len(found) > 1:
                problems.append(Problem(
                    f"spec.traffic.match[{found[1]}]",
                    f"ingress-nginx routes by one {kind_name} only (canary-by-{kind_name}): "
                    f"keep one {kind_name} match",
                ))
        for i in headers:
            if spec.traffic.match[i].prefix is not None:
                problems.append(Problem(
                    f"spec.traffic.match[{i}].prefix",
                    "ingress-nginx has no prefix header match: use exact, or regex "
                    "(canary-by-header-pattern)",
                ))
        for i in cookies:
            if spec.traffic.match[i].exact != "always":
                problems.append(Problem(
                    f"spec.traffic.match[{i}]",
                    "ingress-nginx sends a request to the canary by cookie only when the "
                    "cookie's value is 'always' (canary-by-cookie): set exact: always",
                ))
    mirrors = [i for i, s in enumerate(spec.steps) if s.mirror is not None]
    if mirrors and kind in (RouterKind.NGINX, RouterKind.REPLICAS):
        problems.append(Problem(
            f"spec.steps[{mirrors[0]}].mirror",
            f"the {kind.value} router cannot mirror requests: remove the mirror step, or use "
            "gatewayAPI or istio",
        ))
    return problems


def parse_plan(doc: Mapping[str, Any]) -> RolloutPlan:
    plan, problems = check_plan(doc)
    if problems or plan is None:
        raise InvalidSpec(problems)
    return plan


# ----------------------------------------------------------------------------- policies


def check_policy(doc: Mapping[str, Any]) -> tuple[SLOPolicy | None, list[Problem]]:
    try:
        policy = SLOPolicy.model_validate(without_nulls(doc))
    except ValidationError as exc:
        return None, problems_from(exc)
    return policy, _policy_semantics(policy)


def _policy_semantics(policy: SLOPolicy) -> list[Problem]:
    spec = policy.spec
    problems: list[Problem] = []
    names: dict[str, int] = {}
    for i, slo in enumerate(spec.slos):
        at = f"spec.slos[{i}]"
        if slo.name in names:
            problems.append(Problem(
                f"{at}.name", f"duplicate SLO {slo.name!r} (also spec.slos[{names[slo.name]}])"
            ))
        names[slo.name] = i
        kinds = [k for k in SLIKind if getattr(slo.sli, k.value) is not None]
        if len(kinds) != 1:
            problems.append(Problem(
                f"{at}.sli",
                "set exactly one of ratio, latency, throughput, gauge or probe"
                + (f" (found {', '.join(kinds)})" if kinds else ""),
            ))
            continue
        kind = kinds[0]
        if kind in (SLIKind.RATIO, SLIKind.LATENCY, SLIKind.PROBE) and slo.objective is None:
            problems.append(Problem(
                f"{at}.objective",
                f"required for a {kind} SLI: the percentage that must be good, e.g. 99.9",
            ))
        if slo.window.seconds <= 0:
            problems.append(Problem(f"{at}.window", "must be longer than 0, e.g. 30d"))
        if slo.is_threshold and slo.burn_rate_alerts:
            problems.append(Problem(
                f"{at}.burnRateAlerts",
                f"burn rates need an error budget; a {kind} SLI has none: remove them",
            ))
        for j, alert in enumerate(slo.burn_rate_alerts):
            if alert.short.seconds >= alert.long.seconds:
                problems.append(Problem(
                    f"{at}.burnRateAlerts[{j}].short",
                    f"must be shorter than long ({alert.long}); the Workbook uses long/12",
                ))
            if alert.long.seconds > slo.window.seconds:
                problems.append(Problem(
                    f"{at}.burnRateAlerts[{j}].long",
                    f"must not be longer than the SLO window ({slo.window})",
                ))
        for field, text in slo.sli.templates().items():
            for name in templates.unknown_variables(text):
                problems.append(Problem(
                    f"{at}.sli.{field}",
                    f"unknown template variable {{{{{name}}}}}; use only "
                    + ", ".join("{{" + v + "}}" for v in sorted(templates.ALLOWED_VARIABLES)),
                ))
    freeze = spec.error_budget_policy.freeze_releases
    if freeze is not None:
        at = "spec.errorBudgetPolicy.freezeReleases"
        freeze_slo = spec.slo(freeze.slo)
        if freeze_slo is None:
            problems.append(Problem(
                f"{at}.slo",
                f"SLO {freeze.slo!r} is not in spec.slos (it has: {', '.join(names) or 'none'})",
            ))
        elif _has_one_sli(freeze_slo) and freeze_slo.is_threshold:
            problems.append(Problem(
                f"{at}.slo", f"SLO {freeze.slo!r} has no error budget; name a ratio, latency "
                "or probe SLO",
            ))
        if freeze.release_above.value < freeze.when_remaining_below.value:
            problems.append(Problem(
                f"{at}.releaseAbove",
                f"must be at least whenRemainingBelow ({freeze.when_remaining_below})",
            ))
    for i, override in enumerate(spec.overrides):
        if override.expires.tzinfo is None:
            problems.append(Problem(
                f"spec.overrides[{i}].expires", "must carry a time zone, e.g. 2026-11-27T15:00:00Z"
            ))
    return problems


def _has_one_sli(slo: SLO) -> bool:
    """Exactly one SLI kind is set (otherwise the SLI's own problem is reported already)."""
    return sum(getattr(slo.sli, k.value) is not None for k in SLIKind) == 1


def parse_policy(doc: Mapping[str, Any]) -> SLOPolicy:
    policy, problems = check_policy(doc)
    if problems or policy is None:
        raise InvalidSpec(problems)
    return policy


# ----------------------------------------------------------------------------- both


def check_plan_against_policy(plan: RolloutPlan, policy: SLOPolicy) -> list[Problem]:
    """Gates name SLOs the policy has, of a kind the gate can judge."""
    problems: list[Problem] = []
    available = ", ".join(s.name for s in policy.spec.slos)
    for i, gate in enumerate(plan.spec.gates):
        name = gate.slo_name
        if name is None:
            continue
        field = "slo" if gate.kind == GateKind.SLO else "canaryVsStable.slo"
        found = policy.spec.slo(name)
        if found is None:
            problems.append(Problem(
                f"spec.gates[{i}].{field}",
                f"SLO {name!r} is not in SLOPolicy {policy.metadata.name!r} "
                f"(it has: {available})",
            ))
        elif gate.kind == GateKind.CANARY_VS_STABLE and found.is_threshold:
            problems.append(Problem(
                f"spec.gates[{i}].canaryVsStable.slo",
                f"SLO {name!r} is a {found.sli.kind} SLI with no error ratio to compare; "
                "use a ratio, latency or probe SLO",
            ))
    return problems
