"""Per-model policy, one TOML file per model (`<policies_dir>/<model>.toml`): how to unlearn,
what to evaluate on, and what a result must meet to be published without a human.

    [unlearning]
    method = "idk"              # towards a refusal; regularized: the retain term is on (alpha = 1)
    adapter = "grun"            # "grun" (base + gated modules), "lora" or "full"
    steps = 48                  # the budget; the stopping rule usually ends the run sooner
    check_every = 16            # ask the forget questions every 16 steps; stop once they pass
    lr = 4e-3                   # default: the adapter's own rate (grun 4e-3)
    batch_size = 4
    retain_data = "retain.jsonl"   # relative paths are relative to the policy file
    [unlearning.loss]
    alpha = 1.0
    [unlearning.adapter_options]
    rank = 4

    [evaluation]
    utility_data = "utility.jsonl"  # default: a quarter of the retain data, held out of
                                    # training; with neither, general questions (eval/general.py)
    utility_limit = 32
    max_new_tokens = 48
    probes = ["no_chat", "adapter_removal"]   # robustness probes (worker.engine.eval.probes)

    [publish]
    max_leak_rate = { direct = 0.0, paraphrased = 0.1, verbatim = 0.0, no_chat = 0.1 }
                                # any probe by name; one about a kind of record the ticket has
                                # none of (a question for a text-only ticket) is not held against it
    min_utility_ratio = 0.9
    max_cost_s = 3600
"""

from __future__ import annotations

import hashlib
import json
import tomllib
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from domain.errors import UserError
from domain.records import DataError


class PolicyError(UserError):
    """A policy file that cannot be used; the message names the file and the key."""


@dataclass(frozen=True)
class UnlearningPolicy:
    # IdkNLL through GRUN (edit at every position): measured on the demo ticket, NPO left 3 of
    # 8 facts and garbled answers after 48 steps; IdkNLL left none, answering with a refusal.
    method: str = "idk"
    adapter: str = "grun"
    steps: int = 48  # the budget: the stopping rule ends the run as soon as the probes pass
    check_every: int = 16  # steps between stopping-rule checks; 0: always run the whole budget
    lr: float | None = None  # None: the adapter's own (grun 4e-3, lora 1e-4, full 1e-5)
    batch_size: int = 4
    seed: int = 0
    retain_data: str | None = None
    loss: dict = field(default_factory=lambda: {"alpha": 1.0})
    adapter_options: dict = field(default_factory=dict)


@dataclass(frozen=True)
class EvaluationPolicy:
    utility_data: str | None = None
    utility_limit: int = 32
    max_new_tokens: int = 48
    # Reported; a probe limits publication only when [publish] max_leak_rate names it.
    # adapter_removal shows what the base weights still say (docs/engine.md, GRUN's caveat).
    probes: tuple[str, ...] = ("no_chat", "adapter_removal")


@dataclass(frozen=True)
class PublishPolicy:
    # no_chat (the question as plain text, without the chat template) is limited as the
    # paraphrases are: on the ticket benchmark 5 of 15 tickets published under the earlier
    # defaults still gave 1-3 of 8 facts that way; the stopping check asks it since.
    max_leak_rate: dict = field(
        default_factory=lambda: {
            "direct": 0.0,
            "paraphrased": 0.1,
            "verbatim": 0.0,
            "no_chat": 0.1,
        }
    )
    min_utility_ratio: float = 0.9
    max_cost_s: float = 6 * 3600


POLICY_SECTIONS = ("unlearning", "evaluation", "publish")


@dataclass(frozen=True)
class ModelPolicy:
    source: str  # the file it came from, or "defaults"
    unlearning: UnlearningPolicy = field(default_factory=UnlearningPolicy)
    evaluation: EvaluationPolicy = field(default_factory=EvaluationPolicy)
    publish: PublishPolicy = field(default_factory=PublishPolicy)

    def fingerprint(self) -> dict:
        """What decided a ticket: the effective settings (the file's values and the defaults it
        left out) and their sha256. Stored with the evaluation and named in the published /
        held audit event, so a later change of the file cannot rewrite why a ticket passed."""
        content = {name: asdict(getattr(self, name)) for name in POLICY_SECTIONS}
        digest = hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()
        return {"source": self.source, "sha256": digest, "content": content}

    def data_path(self, value: str | None) -> Path | None:
        """Data files are relative to the policy file's folder."""
        if value is None:
            return None
        path = Path(value).expanduser()
        return (
            path
            if path.is_absolute() or self.source == "defaults"
            else Path(self.source).parent / path
        )


def _section(cls, table: dict, source: str, name: str):
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(table) - known)
    if unknown:
        raise PolicyError(
            f"{source}: [{name}] has unknown key {unknown[0]!r}; known: {', '.join(sorted(known))}"
        )
    return cls(**table)


def parse_policy(text: str, source: str) -> ModelPolicy:
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise PolicyError(f"{source}: not valid TOML: {error}") from error
    classes = (UnlearningPolicy, EvaluationPolicy, PublishPolicy)
    sections = dict(zip(POLICY_SECTIONS, classes, strict=True))
    unknown = sorted(set(document) - set(sections))
    if unknown:
        raise PolicyError(f"{source}: unknown section [{unknown[0]}]; known: {', '.join(sections)}")
    parsed = {
        name: _section(cls, document.get(name, {}), source, name) for name, cls in sections.items()
    }
    return ModelPolicy(source=source, **parsed)


def load_policy(policies_dir: Path, model_name: str) -> ModelPolicy:
    path = Path(policies_dir) / f"{model_name}.toml"
    if not path.is_file():
        return ModelPolicy(source="defaults")
    return parse_policy(path.read_text(), str(path))


def violations(policy: PublishPolicy, evaluation: dict) -> list[str]:
    """Why a result may not be published automatically; empty when it may. A measurement
    the policy asks for but the evaluation lacks is a violation, never a pass."""
    problems = []
    leak = evaluation.get("leak_rate", {})
    skipped = set(evaluation.get("not_applicable", ()))
    for probe, limit in sorted(policy.max_leak_rate.items()):
        if probe not in leak and probe in skipped:
            continue  # e.g. no question to ask a text-only ticket
        if probe not in leak:
            problems.append(f"leak rate on probe {probe!r} was not measured")
        elif leak[probe] > limit:
            problems.append(f"leak rate on {probe!r} is {leak[probe]:.3f} > {limit}")
    ratio = evaluation.get("utility", {}).get("ratio")
    if ratio is None:
        problems.append("utility was not measured")
    elif ratio < policy.min_utility_ratio:
        problems.append(f"utility ratio {ratio:.3f} < {policy.min_utility_ratio}")
    cost = evaluation.get("cost", {}).get("total_s")
    if cost is not None and cost > policy.max_cost_s:
        problems.append(f"cost {cost:.0f} s > {policy.max_cost_s:.0f} s")
    return problems


def require_file(policy: ModelPolicy, value: str | None, what: str) -> Path | None:
    path = policy.data_path(value)
    if path is not None and not path.is_file():
        raise DataError(policy.source, f"{what} file {path} does not exist", field=what)
    return path
