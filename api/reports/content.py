"""What a ticket report says, as data (the JSON form; the HTML renders the same dict).

The first part is for a manager: the verdict against the policy rule by rule, the three axes
(forgetting per probe before and after, utility kept, cost) and what was tried. The appendix
is for an engineer or auditor: the unlearning curve, the policy and its hash, the artifact's
hash, a few answers before and after with every personal value masked, and the ticket's audit
events. No record, unmasked answer or subject id appears in it.
"""

from __future__ import annotations

import json
from pathlib import Path

from sqlalchemy.orm import Session

from domain.audit.service import events_for_request
from domain.versions import repository as versions
from models import DeletionRequest

VERDICTS = {"published", "held", "undone"}


def _rule(
    kind: str, limit: float, measured: float | None, upper: bool, probe: str | None = None
) -> dict:
    """One policy rule, by kind (leak_rate of a probe, utility, cost) so that each language
    names it: `upper` limits are maxima (leak rate, cost), others minima."""
    rule = {"rule": kind, "probe": probe, "limit": limit, "measured": measured}
    if measured is None:
        return {**rule, "margin": None, "passed": False}
    margin = limit - measured if upper else measured - limit
    return {**rule, "margin": margin, "passed": margin >= 0}


def policy_rules(evaluation: dict) -> list[dict]:
    """Each rule of the policy that decided the ticket, with what was measured."""
    publish = (evaluation.get("policy") or {}).get("content", {}).get("publish")
    if not publish:
        return []
    leak, skipped = evaluation.get("leak_rate", {}), set(evaluation.get("not_applicable", ()))
    rules = [
        # A probe about records the ticket has none of (a question for a passage) is no rule
        # for this ticket: the gate skipped it, and so does the report (passed: None).
        {**_rule("leak_rate", limit, None, upper=True, probe=probe), "passed": None}
        if probe in skipped and probe not in leak
        else _rule("leak_rate", limit, leak.get(probe), upper=True, probe=probe)
        for probe, limit in sorted(publish["max_leak_rate"].items())
    ]
    rules.append(_rule("utility", publish["min_utility_ratio"],
                       evaluation.get("utility", {}).get("ratio"), upper=False))  # fmt: skip
    total = evaluation.get("cost", {}).get("total_s")
    rules.append(_rule("cost", publish["max_cost_s"], total, upper=True))
    return rules


def verdict(ticket: DeletionRequest) -> str:
    if ticket.state in VERDICTS:
        return ticket.state
    if ticket.state == "approved":
        return "approved"
    return "closed" if ticket.closed_at else "open"


def forgetting(ticket: DeletionRequest, evaluation: dict) -> list[dict]:
    before = (ticket.assessment or {}).get("leak_rate", {})
    after = evaluation.get("leak_rate", {})
    return [{"probe": p, "before": before.get(p), "after": after.get(p)}
            for p in sorted(set(before) | set(after))]  # fmt: skip


def retraining_s(session: Session, model_name: str) -> float | None:
    """What retraining would cost, as far as the service knows it: the wall time of the
    fine-tuning run that made the registered model (its run.json, written by `obliviate
    finetune`). None for a model registered without one (a downloaded or built-in model)."""
    base = versions.version_by_number(session, model_name, 1)
    run = Path(base.spec) / "run.json" if base is not None else None
    try:
        seconds = json.loads(run.read_text())["cost"]["wall_time_s"] if run else None
    except (OSError, ValueError, KeyError, TypeError):  # no such file, or not a run record
        return None
    return float(seconds) if isinstance(seconds, int | float) and seconds > 0 else None


def measurements(evaluation: dict) -> list[dict]:
    """The appendix's other before/after numbers: the answers' probability and, for passages,
    MUSE's verbatim score."""
    return [
        {"metric": name, "before": value.get("before"), "after": value.get("after")}
        for name in ("forget_prob", "verbatim_score")
        if isinstance(value := evaluation.get(name), dict)
    ]


def probe_rows(robustness: dict) -> list[dict]:
    """Every robustness probe the evaluation ran or skipped: its leak rate on the ticket's
    records and on other records (what the probe does to data that must stay), or why not."""
    return [
        {"probe": name, "status": row.get("status"), "metric": row.get("metric"),
         "forget": row.get("forget"), "retain": row.get("retain"), "reason": row.get("reason")}
        for name, row in sorted(robustness.items())
    ]  # fmt: skip


def budget_steps(ticket: DeletionRequest, evaluation: dict) -> int | None:
    """The step budget the run had: an operator's override (a re-run), else the policy's."""
    if steps := (ticket.options or {}).get("steps"):
        return steps
    policy = (evaluation.get("policy") or {}).get("content") or {}
    return policy.get("unlearning", {}).get("steps")


def build_report(session: Session, ticket: DeletionRequest) -> dict:
    evaluation = ticket.evaluation or {}
    cost = evaluation.get("cost", {})
    stopping = evaluation.get("stopping") or {}
    version = versions.version(session, ticket.version_id) if ticket.version_id else None
    robustness = evaluation.get("robustness", {})
    removal = robustness.get("adapter_removal", {})
    unlearning_s = evaluation.get("stage_s", {}).get("unlearn")
    retrain_s = retraining_s(session, ticket.model_name)
    return {
        "ticket": {
            "id": str(ticket.id),
            "model": ticket.model_name,
            "state": ticket.state,
            "legal_basis": ticket.legal_basis,
            "record_count": ticket.record_count,
            "decision_reason": ticket.decision_reason,
        },  # fmt: skip
        "verdict": verdict(ticket),
        "rules": policy_rules(evaluation),
        "forgetting": forgetting(ticket, evaluation),
        "utility": evaluation.get("utility"),
        "cost": {
            "unlearning_s": unlearning_s,
            "retraining_s": retrain_s,
            "share_of_retraining": unlearning_s / retrain_s if unlearning_s and retrain_s else None,
            "total_s": cost.get("total_s"),
            "peak_memory_mb": cost.get("peak_memory_mb"),
            "trainable_parameters": cost.get("trainable_parameters"),
        },
        "tried": {
            "method": version.method if version else None,
            "adapter": version.adapter if version else None,
            "budget_steps": budget_steps(ticket, evaluation),
            "steps": cost.get("steps"),
            "stopped_at": stopping.get("stopped_at"),
        },
        # With an adapter the base weights still hold the data (docs/engine.md, GRUN).
        "adapter_removal_leak": removal.get("forget") if removal.get("status") == "ok" else None,
        "curve": [
            {"step": c["step"], "leak_rate": c.get("leak_rate", {})}
            for c in stopping.get("checks", [])
        ],  # fmt: skip
        "measurements": measurements(evaluation),
        "probes": probe_rows(robustness),
        # Masked at evaluation, while the data key was alive (domain.redaction.mask_personal).
        "examples": evaluation.get("examples") or [],
        "policy": evaluation.get("policy"),
        "version": None
        if version is None
        else {
            "number": version.number,
            "status": version.status,
            "artifact_hash": version.artifact_hash,
        },  # fmt: skip
        "events": [
            {"seq": e.seq, "time": e.occurred_at.isoformat(), "type": e.event_type, "hash": e.hash}
            for e in events_for_request(session, ticket.id)
        ],  # fmt: skip
    }
