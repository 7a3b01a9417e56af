"""Evaluation: forgetting, utility, membership inference, fluency and cost (docs/metrics.md).

    from worker.engine.eval import evaluate, EvalOptions
    result = evaluate("smollm2-135m", suite="tofu", split="forget05", reference=None)

Lower-level pieces for other evaluations: `scoring.score_requests` (teacher-forced answer
log-probs, a question's answers sharing one prompt pass), `worker.engine.generate`
(batched greedy generation) and the pure per-example functions in `metrics`.
"""

from worker.engine.eval.evaluate import EvalOptions, evaluate
from worker.engine.eval.report import format_summary, write_eval

__all__ = ["EvalOptions", "evaluate", "format_summary", "write_eval"]
